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
* no leaked image (only the recorded one exists).

Each boundary ends "resumed" (the operation completed) or "reverted" (the
instance is back where it was, with a fault); the table of both is printed.
"""

import os
import time

import pytest
import sqlalchemy as sa

from lifecycle.compute import flows as compute_flows
from lifecycle.conductor import flows as conductor_flows
from lifecycle.db import api as db_api
from lifecycle.flows import faults
from tests.conftest import live_domain
from tests.functional.conftest import qemu_io
from tests.integration.conftest import DatabaseServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOST = 'host-a1'
GROUP = 'group-a'
FLAVOR = {'id': 'fi-64', 'name': 'fi.64', 'ram': 64, 'vcpus': 1, 'disk': 1}
PATTERN = 'write -P 0x6b 3M 1M'
SETTLE = 90
# The conductor gives up on a silent (killed) compute host after this.
RPC_TIMEOUT = 6


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

    def to_state(self, server_id: str, vm_state: str) -> None:
        """Bring the instance to ACTIVE or SHELVED_OFFLOADED without
        faults."""
        instance = self.settle(server_id)
        if instance.vm_state == vm_state:
            return
        if vm_state == 'active':
            self.action(server_id, {'unshelve': None})
        else:
            self.action(server_id, {'shelve': None})
        assert self.settle(server_id).vm_state == vm_state

    def memory_used(self) -> int:
        with self.db.engine.connect() as conn:
            return conn.execute(sa.text(
                'SELECT memory_mb_used FROM compute_nodes WHERE host = :h'),
                {'h': HOST}).scalar()

    def check(self, server_id: str) -> dict:
        """The invariants after a boundary; returns what was found."""
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
        data_lost = not self.pattern_found(disk, image_id)
        return {'vm_state': instance.vm_state, 'problems': problems,
                'data_lost': data_lost, 'faults': len(instance.faults),
                'fully_offloaded': bool(image_id and
                                        not sysmeta.get('shelved_disk'))}

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
        except (AssertionError, Exception):  # noqa: BLE001 - it's the finding
            return False
        return True


@pytest.fixture
def cloud(make_deployment, postgres, system_libvirt_uri, client_for):
    deployment = make_deployment(
        postgres.create(), system_libvirt_uri, hosts={HOST: GROUP},
        host_memory_mb=128)
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


def report(title: str, rows: list[dict]) -> str:
    lines = [title, '%-52s %-9s %-18s %s' % ('boundary', 'outcome',
                                             'state', 'data lost')]
    for row in rows:
        lines.append('%-52s %-9s %-18s %s' % (
            row['boundary'], row['outcome'], row['vm_state'],
            'YES' if row['data_lost'] else '0'))
    resumed = sum(r['outcome'] == 'resumed' for r in rows)
    lines.append('boundaries tried %d, resumed %d, reverted %d, data lost %d'
                 % (len(rows), resumed, len(rows) - resumed,
                    sum(r['data_lost'] for r in rows)))
    return '\n'.join(lines)


def run_boundary(cloud, server_id: str, boundary: tuple, *,
                 start_state: str, request: dict, done, restart_args: tuple
                 ) -> dict:
    """Kill the service at ``boundary`` during ``request``, restart it,
    check; ``done(found)`` tells a completed operation."""
    name = ':'.join(boundary)
    cloud.to_state(server_id, start_state)
    faults_before = len(cloud.instance(server_id).faults)
    process = cloud.restart(*restart_args, boundary=name)
    cloud.action(server_id, request)
    cloud.wait_killed(process, name)
    cloud.restart(*restart_args)
    found = cloud.check(server_id)
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
