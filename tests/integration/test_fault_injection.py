"""SIGKILL at every task boundary, then a restart: nothing is lost.

The services run as separate processes on RabbitMQ and PostgreSQL with a
real QEMU guest. For every task of the shelve, shelve offload, unshelve and
full offload flows (compute) and of the unshelve placement (conductor),
before the task and after it (its work done, its result not yet recorded),
the service is started with ``LIFECYCLE_FAULT_BOUNDARY`` naming that
boundary, the operation is requested, the service kills itself there, and
it is started again without the hook. Then, once the instance has no task
left, every boundary must leave:

* a valid state: no task_state, no unfinished flow record;
* the guest's data: the pattern written once at the start is read back
  from the disk (or, fully offloaded, the uploaded image) after every
  boundary -- one guest goes through all of them;
* no leaked domain (a domain exactly when the state says so) and no leaked
  or double claim (host usage equals the instance's claim);
* no leaked image (only the recorded one exists);
* a memory state file exactly when the instance is shelved offloaded with
  the file's location recorded (no orphan file, no record without its
  file), and a resume from it that booted cold instead has a fault.

Each boundary ends "resumed" (the operation completed) or "reverted" (the
instance is back where it was, with a fault); the table of both is printed.
The hibernate-shelve and the resume from its memory state have their own
table (:func:`test_compute_killed_at_every_hibernate_boundary`).
"""

import itertools
import os
import time

import libvirt
import pytest
import sqlalchemy as sa

from lifecycle import names
from lifecycle.compute import flows as compute_flows
from lifecycle.compute import hibernate
from lifecycle.conductor import flows as conductor_flows
from lifecycle.db import api as db_api
from lifecycle.flows import faults
from tests.conftest import live_domain
from tests.functional.conftest import qemu_io
from tests.harness.deployment import DatabaseServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOST = 'host-a1'
GROUP = 'group-a'
FLAVOR = {'id': 'fi-64', 'name': 'fi.64', 'ram': 64, 'vcpus': 1, 'disk': 1}
PATTERN = 'write -P 0x6b 3M 1M'
SETTLE = 90
# The conductor gives up on a silent (killed) compute host after this.
RPC_TIMEOUT = 6
HIBERNATE = {'shelve': {names.API_KEEP_MEMORY: True}}


def boundaries(factory) -> list[tuple[str, str, str]]:
    """Every (flow, task, when) of the flow the factory builds."""
    flow = factory(None)
    return [(flow.name, task.name, when) for task in flow
            for when in (faults.BEFORE, faults.AFTER)]


@pytest.fixture(scope='module')
def postgres():
    server = DatabaseServer('postgresql')
    yield server
    server.drop_all()


class Cloud:
    def __init__(self, deployment, client, db: db_api.Database) -> None:
        self.deployment = deployment
        self.client = client
        self.db = db
        self.incarnation = 0

    # -- processes -------------------------------------------------------

    def restart(self, name: str, command: str, extra: dict,
                boundary: str | None = None):
        """Replace the service ``name`` by a new process (the old one is
        already dead, or is stopped here)."""
        old = self.deployment.processes.pop(name, None)
        if old is not None:
            old.stop()
        self.incarnation += 1
        process = self.deployment.spawn(
            '%s-%d' % (name, self.incarnation), command, extra,
            env={faults.ENV: boundary} if boundary else None)
        self.deployment.processes[name] = self.deployment.processes.pop(
            process.name)
        process.wait_ready()
        return process

    @staticmethod
    def wait_killed(process, boundary: str) -> None:
        status = process.wait_exit(SETTLE)
        marker = 'SIGKILL at %s' % boundary
        assert status == -9 and marker in process.log(), (
            'expected death at %s, got status %s:\n%s' % (
                boundary, status, process.tail()))

    # -- the instance ------------------------------------------------------

    def instance(self, server_id: str):
        return self.db.instance_get(server_id)

    def settle(self, server_id: str):
        """The instance once no task and no flow record is left."""
        deadline = time.monotonic() + SETTLE
        while True:
            self.deployment.check_alive()
            instance = self.instance(server_id)
            with self.db.engine.connect() as conn:
                books = conn.execute(sa.text(
                    'SELECT count(*) FROM logbooks')).scalar()
            if instance.task_state is None and books == 0:
                return instance
            assert time.monotonic() < deadline, (
                'instance %s stuck: %s/%s, %d flow records' % (
                    server_id, instance.vm_state, instance.task_state,
                    books))
            time.sleep(0.2)

    def action(self, server_id: str, body: dict) -> None:
        status, reply = self.client.action(server_id, body)
        assert status == 202, (body, status, reply)

    def to_state(self, server_id: str, vm_state: str,
                 memory: bool = False) -> None:
        """Bring the instance to ACTIVE or SHELVED_OFFLOADED (``memory``:
        hibernate-shelved, with a memory state) without faults."""
        instance = self.settle(server_id)
        if (instance.vm_state == vm_state and
                hibernate.recorded(instance) == memory):
            return
        if instance.vm_state != 'active':
            self.action(server_id, {'unshelve': None})
            instance = self.settle(server_id)
            assert instance.vm_state == 'active'
        if vm_state != 'active':
            self.action(server_id, HIBERNATE if memory else {'shelve': None})
            instance = self.settle(server_id)
        assert (instance.vm_state, hibernate.recorded(instance)) == (
            vm_state, memory)

    def memory_used(self) -> int:
        with self.db.engine.connect() as conn:
            return conn.execute(sa.text(
                'SELECT memory_mb_used FROM compute_nodes WHERE host = :h'),
                {'h': HOST}).scalar()

    def memory_state_file(self, server_id: str) -> str:
        """Where :func:`hibernate.memory_state_path` puts it (the group's
        storage is the compute's instances_path)."""
        return os.path.join(self.deployment.storage_path(GROUP), server_id,
                            hibernate.MEMORY_STATE_NAME)

    def check(self, server_id: str, had_memory: bool = False,
              faults_before: int = 0) -> dict:
        """The invariants after a boundary; returns what was found.
        ``had_memory``: the request started from a memory state (and
        ``faults_before`` faults)."""
        instance = self.settle(server_id)
        sysmeta = instance.system_metadata
        uri = self.deployment.libvirt_uri
        domain = live_domain(uri, server_id)
        disk = self.deployment.disk_of(server_id, GROUP)
        problems = []
        if instance.vm_state == 'active':
            if not (domain and domain['running']):
                problems.append('active without a running domain')
        elif instance.vm_state == 'shelved_offloaded':
            if domain is not None:
                problems.append('leaked domain')
        else:
            problems.append('unexpected vm_state %s' % instance.vm_state)
        claimed = instance.vm_state != 'shelved_offloaded'
        if (instance.claimed_host == HOST) != claimed:
            problems.append('claim %s in %s' % (instance.claimed_host,
                                                instance.vm_state))
        if self.memory_used() != (FLAVOR['ram'] if claimed else 0):
            problems.append('host usage %d MiB' % self.memory_used())
        image_id = sysmeta.get('shelved_image_id')
        images = self.shelved_images(server_id)
        if sorted(images) != ([image_id] if image_id else []):
            problems.append('images %s, recorded %s' % (images, image_id))
        memory = self.check_memory_state(server_id, instance, domain,
                                         had_memory, faults_before, problems)
        data_lost = not self.pattern_found(disk, image_id)
        return {'vm_state': instance.vm_state, 'problems': problems,
                'data_lost': data_lost, 'faults': len(instance.faults),
                'fully_offloaded': bool(image_id and
                                        not sysmeta.get('shelved_disk')),
                'memory': memory}

    def check_memory_state(self, server_id: str, instance, domain,
                           had_memory: bool, faults_before: int,
                           problems: list) -> str:
        """The memory state's invariants; 'saved' (kept for a resume),
        'restored' or 'booted' (the guest after a resume), or '-'."""
        recorded = instance.system_metadata.get(names.SHELVED_MEMORY_STATE)
        present = os.path.exists(self.memory_state_file(server_id))
        if present and not recorded:
            problems.append('memory state file without its record')
        if recorded and not present:
            problems.append('memory state recorded without its file')
        if recorded and recorded != os.path.join(
                server_id, hibernate.MEMORY_STATE_NAME):
            problems.append('memory state recorded at %s' % recorded)
        if (recorded or present) and instance.vm_state != 'shelved_offloaded':
            problems.append('memory state kept in %s' % instance.vm_state)
        if recorded and present:
            return 'saved'
        if not (had_memory and domain and domain['running']):
            return '-'
        # libvirt's own record of how the guest started: from the state
        # file, or booted (the cold-boot fallback).
        if self.running_reason(server_id) == (
                libvirt.VIR_DOMAIN_RUNNING_RESTORED):
            return 'restored'
        new_faults = instance.faults[:len(instance.faults) - faults_before]
        if not any(f.details.startswith('SavedStateUnusable')
                   for f in new_faults):
            problems.append('booted cold from a memory state without a '
                            'fault')
        return 'booted'

    def running_reason(self, server_id: str) -> int:
        conn = libvirt.open(self.deployment.libvirt_uri)
        try:
            return conn.lookupByUUIDString(server_id).state()[1]
        finally:
            conn.close()

    def shelved_images(self, server_id: str) -> list[str]:
        found = []
        for meta in os.listdir(self.deployment.images_dir):
            if meta.endswith('.json'):
                with open(os.path.join(self.deployment.images_dir,
                                       meta)) as f:
                    text = f.read()
                if server_id in text:
                    found.append(meta.removesuffix('.json'))
        return found

    def pattern_found(self, disk: str, image_id: str | None) -> bool:
        source = disk if os.path.exists(disk) else (
            os.path.join(self.deployment.images_dir, image_id)
            if image_id else None)
        if source is None:
            return False
        try:
            qemu_io(source, PATTERN.replace('write', 'read'))
        except (AssertionError, Exception):  # it's the finding
            return False
        return True


@pytest.fixture
def cloud(make_deployment, postgres, system_libvirt_uri, client_for):
    # Standby processes: the two restarts of each boundary without the
    # seconds of imports each (the service's start itself is a cold one).
    deployment = make_deployment(
        postgres.create(), system_libvirt_uri, hosts={HOST: GROUP},
        host_memory_mb=128, standby=True)
    client = client_for(deployment.url)
    status, body = client.request('POST', '/flavors', {'flavor': FLAVOR})
    assert status == 200, (status, body)
    db = db_api.Database(deployment.database_url)
    cloud = Cloud(deployment, client, db)
    cloud.restart('conductor', 'conductor', CONDUCTOR_CONF)
    yield cloud
    db.dispose()


CONDUCTOR_CONF = {'DEFAULT': {'host': 'conductor-1',
                              'rpc_response_timeout': RPC_TIMEOUT}}


def compute_conf(deployment, mode: str) -> dict:
    return {'DEFAULT': {'host': HOST,
                        'instances_path': deployment.storage_path(GROUP)},
            'shelve': {'offload_mode': mode}}


def boot_with_pattern(cloud) -> str:
    server_id = cloud.client.boot('faulty', flavor=FLAVOR['id'],
                                  image=cloud.deployment.image_id, host=HOST)
    assert cloud.settle(server_id).vm_state == 'active'
    # QEMU holds the image lock while it runs: write with the guest off.
    cloud.action(server_id, {'os-stop': None})
    assert cloud.settle(server_id).vm_state == 'stopped'
    qemu_io(cloud.deployment.disk_of(server_id, GROUP), PATTERN)
    cloud.action(server_id, {'os-start': None})
    assert cloud.settle(server_id).vm_state == 'active'
    return server_id


def report(title: str, rows: list[dict], memory: bool = False) -> str:
    """The table; ``memory`` adds the memory state's column."""
    form = '%-52s %-9s %-18s ' + ('%-9s ' if memory else '%.0s') + '%s'
    lines = [title, form % ('boundary', 'outcome', 'state', 'memory',
                            'data lost')]
    for row in rows:
        lines.append(form % (
            row['boundary'], row['outcome'], row['vm_state'], row['memory'],
            'YES' if row['data_lost'] else '0'))
    resumed = sum(r['outcome'] == 'resumed' for r in rows)
    lines.append('boundaries tried %d, resumed %d, reverted %d, data lost %d'
                 % (len(rows), resumed, len(rows) - resumed,
                    sum(r['data_lost'] for r in rows)))
    return '\n'.join(lines)


def run_boundary(cloud, server_id: str, boundary: tuple, *,
                 start_state: str, request: dict, done, restart_args: tuple,
                 start_memory: bool = False) -> dict:
    """Kill the service at ``boundary`` during ``request``, restart it,
    check; ``done(found)`` tells a completed operation. ``start_memory``:
    ``start_state`` with a memory state (hibernate-shelved)."""
    name = ':'.join(boundary)
    cloud.to_state(server_id, start_state, memory=start_memory)
    faults_before = len(cloud.instance(server_id).faults)
    process = cloud.restart(*restart_args, boundary=name)
    cloud.action(server_id, request)
    cloud.wait_killed(process, name)
    cloud.restart(*restart_args)
    found = cloud.check(server_id, had_memory=start_memory,
                        faults_before=faults_before)
    found['boundary'] = name
    found['outcome'] = 'resumed' if done(found) else 'reverted'
    if found['outcome'] == 'reverted' and found['faults'] == faults_before:
        found['problems'].append('reverted without a fault')
    return found


def in_state(vm_state: str):
    return lambda found: found['vm_state'] == vm_state


def fully_offloaded(found: dict) -> bool:
    return found['fully_offloaded']


@pytest.mark.timeout(3000)  # 36 boundaries, two restarts each
def test_compute_killed_at_every_boundary(cloud, capsys):
    deployment = cloud.deployment
    server_id = boot_with_pattern(cloud)
    partial = (HOST, 'compute', compute_conf(deployment, 'partial'))
    full = (HOST, 'compute', compute_conf(deployment, 'full'))
    plan = (
        [(b, 'active', {'shelve': None}, in_state('shelved_offloaded'),
          partial)
         for b in boundaries(compute_flows.shelve_flow) +
         boundaries(compute_flows.shelve_offload_flow)] +
        [(b, 'shelved_offloaded', {'unshelve': None}, in_state('active'),
          partial)
         for b in boundaries(compute_flows.unshelve_flow)] +
        [(b, 'active', {'shelve': None}, fully_offloaded, full)
         for b in boundaries(compute_flows.full_offload_flow)])
    rows = []
    for boundary, start, request, done, restart_args in plan:
        rows.append(run_boundary(
            cloud, server_id, boundary, start_state=start, request=request,
            done=done, restart_args=restart_args))
    # The full offload boundaries must really have uploaded: unshelve
    # from the image and read the pattern on the new disk.
    cloud.to_state(server_id, 'active')
    qemu_io(deployment.disk_of(server_id, GROUP),
            PATTERN.replace('write', 'read'))
    with capsys.disabled():
        print('\n' + report('compute killed (SIGKILL) at each boundary',
                            rows))
    assert [r['boundary'] for r in rows if r['problems']] == [], [
        (r['boundary'], r['problems']) for r in rows if r['problems']]
    assert sum(r['data_lost'] for r in rows) == 0
    assert len(rows) == len(plan)


# The unshelve tasks that act differently when a memory state is kept:
# start_domain restores the guest from it (or boots cold, with a fault),
# record_active drops its record with the other shelved_* keys, and
# delete_memory_state deletes the file. accept_unshelve and
# prepare_root_disk do for a hibernate-shelved server exactly what they do
# for any retained disk, and delete_shelved_image has no image to delete
# after a partial offload: the plain unshelve rows above cover those.
MEMORY_UNSHELVE_TASKS = {'start_domain', 'record_active',
                         'delete_memory_state'}


def hibernated(found: dict) -> bool:
    return (found['vm_state'] == 'shelved_offloaded' and
            found['memory'] == 'saved')


@pytest.mark.timeout(900)  # 10 boundaries, two restarts each
def test_compute_killed_at_every_hibernate_boundary(cloud, capsys):
    """Hibernate-shelve (then its offload) and the unshelve that resumes
    from the memory state: resumed or reverted, the state file neither
    leaked nor lost while its record says it is kept."""
    server_id = boot_with_pattern(cloud)
    partial = (HOST, 'compute', compute_conf(cloud.deployment, 'partial'))
    shelving = [(b, 'active', False, HIBERNATE, hibernated)
                for b in boundaries(compute_flows.hibernate_shelve_flow)]
    resuming = [(b, 'shelved_offloaded', True, {'unshelve': None},
                 in_state('active'))
                for b in boundaries(compute_flows.unshelve_flow)
                if b[1] in MEMORY_UNSHELVE_TASKS]
    assert {b[1] for b, *_ in resuming} == MEMORY_UNSHELVE_TASKS
    # Alternated: a hibernate-shelve row leaves the hibernated server the
    # next resume row starts from, and that one the running server the
    # next hibernate-shelve needs.
    plan = [row for pair in itertools.zip_longest(shelving, resuming)
            for row in pair if row]
    rows = []
    for boundary, start, memory, request, done in plan:
        found = run_boundary(
            cloud, server_id, boundary, start_state=start, request=request,
            done=done, restart_args=partial, start_memory=memory)
        if (request is HIBERNATE and found['vm_state'] == 'shelved_offloaded'
                and found['memory'] != 'saved'):
            found['problems'].append('hibernate-shelve lost the memory state')
        rows.append(found)
    with capsys.disabled():
        print('\n' + report('compute killed (SIGKILL) at each hibernate-shelve'
                            ' and resume-from-memory boundary', rows,
                            memory=True))
    assert [r['boundary'] for r in rows if r['problems']] == [], [
        (r['boundary'], r['problems']) for r in rows if r['problems']]
    assert sum(r['data_lost'] for r in rows) == 0
    assert len(rows) == len(plan) == 10


def test_conductor_killed_at_every_boundary(cloud, capsys):
    server_id = boot_with_pattern(cloud)
    conductor = ('conductor', 'conductor', CONDUCTOR_CONF)
    rows = [run_boundary(cloud, server_id, boundary,
                         start_state='shelved_offloaded',
                         request={'unshelve': None}, done=in_state('active'),
                         restart_args=conductor)
            for boundary in boundaries(conductor_flows.unshelve_flow)]
    with capsys.disabled():
        print('\n' + report('conductor killed (SIGKILL) at each boundary',
                            rows))
    assert [r['boundary'] for r in rows if r['problems']] == [], [
        (r['boundary'], r['problems']) for r in rows if r['problems']]
    assert sum(r['data_lost'] for r in rows) == 0
