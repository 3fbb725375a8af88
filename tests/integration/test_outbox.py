"""A 202 means the operation happens, whatever is killed when.

``lifecycle-aio`` runs as a process (inproc:// bus, SQLite, real QEMU guests
under qemu:///system, so guests outlive the process as they would a
restarted nova-compute). It is SIGKILLed:

* at the moment between recording an accepted request and sending it
  (``LIFECYCLE_FAULT_BOUNDARY=accepted:<method>:after``): nothing but the
  database knows of the request;
* at random moments after a shelve's or an unshelve's 202 (seeded; the
  seed is printed): in the message, in a flow, between two flows;

and so is, at random moments, each of the separate services (API,
conductor, compute on RabbitMQ and PostgreSQL).

After each restart the instance must have no task_state within
:data:`BOUND` seconds -- far below ``stuck_task_timeout`` (30 min here, as
by default), so it is never the stuck-task sweep that ends it -- and be
where the request said (carried out) or back where it was with a fault
(ended); no flow record and no accepted request may be left, and the
disk's data written at the start reads back at the end.
"""

import os
import random
import time

import libvirt
import pytest
import sqlalchemy as sa

from lifecycle.db import api as db_api
from lifecycle.flows import faults
from tests.functional.conftest import Client
from tests.functional.conftest import qemu_io
from tests.harness.deployment import DatabaseServer
from tests.harness.deployment import ServiceProcess
from tests.harness.deployment import write_conf

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOUND = 45
PATTERN = 'write -P 0x5a 2M 1M'
ROUNDS = 8
EXPECTED = {'shelve': 'SHELVED_OFFLOADED', 'unshelve': 'ACTIVE'}


def _leftovers(database_url: str) -> tuple[int, int]:
    """(flow records, accepted requests) in the database."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return (conn.execute(sa.text(
                        'SELECT count(*) FROM logbooks')).scalar(),
                    conn.execute(sa.text(
                        'SELECT count(*) FROM accepted_requests')).scalar())
    finally:
        engine.dispose()


class AllInOne:
    def __init__(self, state_dir: str, log_dir: str) -> None:
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.url_db = 'sqlite:///%s' % os.path.join(state_dir, 'aio.sqlite')
        self.conf = write_conf(os.path.join(log_dir, 'aio.conf'), {
            'DEFAULT': {'transport_url': 'inproc://', 'shutdown_timeout': 0,
                        'shelved_offload_time': 0,
                        'stuck_task_timeout': 1800},
            'aio': {'hosts': 'host-a1:group-a, host-a2:group-a',
                    'host_vcpus': 4, 'host_memory_mb': 4096,
                    'state_dir': state_dir},
            'api': {'host': '127.0.0.1', 'port': 0},
            'libvirt': {'connection_uri': 'qemu:///system',
                        'fall_back_to_test_driver': False},
            'image': {'source': 'local', 'default_image_size_mb': 64},
            'database': {'connection': self.url_db},
        })
        self.process: ServiceProcess | None = None
        self.starts = 0
        self.client: Client | None = None

    def start(self, boundary: str | None = None) -> Client:
        self.starts += 1
        self.process = ServiceProcess(
            'aio-%d' % self.starts, 'aio', [self.conf],
            os.path.join(self.log_dir, 'aio-%d.log' % self.starts),
            env={faults.ENV: boundary} if boundary else None)
        where = self.process.wait_ready()
        self.client = Client(where.removeprefix('at ').strip())
        return self.client

    def kill(self) -> None:
        self.process.popen.kill()
        self.process.stop()

    def leftovers(self) -> tuple[int, int]:
        return _leftovers(self.url_db)

    def faults(self, server_id: str) -> list[str]:
        db = db_api.Database(self.url_db)
        try:
            return [f.message for f in db.instance_get(server_id).faults]
        finally:
            db.dispose()


@pytest.fixture
def aio(qemu_dir, tmp_path):
    state_dir = os.path.join(qemu_dir, 'aio')
    os.makedirs(state_dir)
    os.chmod(state_dir, 0o755)
    deployment = AllInOne(state_dir, str(tmp_path))
    yield deployment
    if deployment.process is not None:
        deployment.process.stop()
    conn = libvirt.open('qemu:///system')
    try:
        prefix = os.path.join(state_dir, '')
        for dom in conn.listAllDomains():
            try:
                if prefix not in dom.XMLDesc(0):
                    continue
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefine()
            except libvirt.libvirtError:
                continue  # gone meanwhile
    finally:
        conn.close()


def _settled(aio: AllInOne, server_id: str) -> dict:
    """The server once its task has ended (within BOUND of the restart)."""
    return aio.client.settle(server_id, timeout=BOUND)


def _wait_clean(leftovers, outcomes) -> None:
    """No flow record and no accepted request left, within BOUND (a
    conductor may still be waiting for a killed host's answer when the
    restarted host has finished the unshelve)."""
    deadline = time.monotonic() + BOUND
    while (left := leftovers()) != (0, 0):
        assert time.monotonic() < deadline, (
            '(flow records, accepted requests) left: %s after %s' %
            (left, outcomes))
        time.sleep(0.2)


def _boot(aio: AllInOne) -> str:
    client = aio.start()
    server_id = client.boot('outbox', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    return server_id


def _find_disk(aio: AllInOne, server_id: str) -> str:
    for root, _dirs, files in os.walk(aio.state_dir):
        if os.path.basename(root) == server_id and 'disk' in files:
            return os.path.join(root, 'disk')
    raise AssertionError('no disk of %s under %s' % (server_id,
                                                     aio.state_dir))


@pytest.mark.parametrize('action', ['shelve', 'unshelve'])
def test_killed_between_recording_and_sending(aio, action):
    """Nothing but the database knows of the request when the process
    dies: the next start carries it out."""
    server_id = _boot(aio)
    if action == 'unshelve':
        assert aio.client.action(server_id, {'shelve': None})[0] == 202
        aio.client.wait(server_id, 'SHELVED_OFFLOADED')
    aio.process.stop()
    client = aio.start(boundary='accepted:%s_instance:after' % action)
    try:
        client.action(server_id, {action: None})
    except OSError:
        pass  # the process died before it answered
    status = aio.process.wait_exit(30)
    assert status == -9, aio.process.tail()
    assert 'SIGKILL at accepted:%s_instance:after' % action in (
        aio.process.log())
    aio.process.stop()

    aio.start()
    server = _settled(aio, server_id)
    assert server['status'] == EXPECTED[action], server
    # The conductor's flow record goes a moment after the compute's commit
    # that the client sees.
    _wait_clean(aio.leftovers, [(action, server['status'])])
    assert 'sending %s_instance' % action in aio.process.log()


def test_killed_at_random_moments(aio, capsys):
    seed = int(os.environ.get('LIFECYCLE_OUTBOX_SEED', time.time()))
    rng = random.Random(seed)
    server_id = _boot(aio)
    assert aio.client.action(server_id, {'shelve': None})[0] == 202
    aio.client.wait(server_id, 'SHELVED_OFFLOADED')
    disk = _find_disk(aio, server_id)
    qemu_io(disk, PATTERN)

    outcomes = []
    action = 'unshelve'
    for _round in range(ROUNDS):
        delay = rng.uniform(0, 0.8)
        status, body = aio.client.action(server_id, {action: None})
        assert status == 202, body
        time.sleep(delay)
        aio.kill()
        started = time.monotonic()
        aio.start()
        server = _settled(aio, server_id)
        waited = time.monotonic() - started
        faults_now = aio.faults(server_id)
        if server['status'] == EXPECTED[action]:
            outcome = 'carried out'
        else:
            # Ended instead: back where it was, and it says why.
            assert faults_now, (action, server)
            outcome = 'ended: %s' % faults_now[0]
        outcomes.append((action, round(delay, 3), outcome,
                         round(waited, 1)))
        _wait_clean(aio.leftovers, outcomes)
        action = ('shelve' if server['status'] == 'ACTIVE' else 'unshelve')

    with capsys.disabled():
        print('\nrandom kills of lifecycle-aio (seed %d):' % seed)
        for row in outcomes:
            print('  %-9s kill after %.3f s -> %s (settled %.1f s after '
                  'the restart began)' % row)
    # Most rounds must carry the request out; a round may end with a
    # fault only where the request could no longer be done.
    assert sum(o[2] == 'carried out' for o in outcomes) >= ROUNDS - 1, \
        outcomes
    if aio.client.server(server_id)['status'] == 'ACTIVE':
        assert aio.client.action(server_id, {'shelve': None})[0] == 202
        aio.client.wait(server_id, 'SHELVED_OFFLOADED')
    qemu_io(_find_disk(aio, server_id), PATTERN.replace('write', 'read'))


# -- the separate services ----------------------------------------------------

HOST, GROUP = 'host-a1', 'group-a'
FLAVOR = {'id': 'ob-64', 'name': 'ob.64', 'ram': 64, 'vcpus': 1, 'disk': 1}


@pytest.fixture(scope='module')
def postgres():
    server = DatabaseServer('postgresql')
    yield server
    server.drop_all()


class Services:
    """The processes of a multi-process deployment, each killable and
    started again with its own configuration."""

    def __init__(self, deployment) -> None:
        self.deployment = deployment
        self.confs = {
            'api': ('api', None),
            'conductor': ('conductor', {'DEFAULT': {
                'host': 'conductor-1', 'rpc_response_timeout': 6}}),
            HOST: ('compute', {'DEFAULT': {
                'host': HOST, 'shelved_offload_time': 0,
                'instances_path': deployment.storage_path(GROUP)}}),
        }
        self.starts = 0
        self.client = Client(deployment.url)

    def restart(self, name: str, kill: bool = False) -> None:
        old = self.deployment.processes.pop(name)
        if kill:
            old.popen.kill()
        old.stop()
        self.starts += 1
        command, extra = self.confs[name]
        process = self.deployment.spawn('%s-%d' % (name, self.starts),
                                        command, extra)
        self.deployment.processes[name] = self.deployment.processes.pop(
            process.name)
        where = process.wait_ready()
        if name == 'api':
            self.client = Client(where.removeprefix('at ').strip())

    def leftovers(self) -> tuple[int, int]:
        return _leftovers(self.deployment.database_url)


def test_each_service_killed_at_random_moments(make_deployment, postgres,
                                               system_libvirt_uri, capsys):
    seed = int(os.environ.get('LIFECYCLE_OUTBOX_SEED', time.time()))
    rng = random.Random(seed)
    deployment = make_deployment(postgres.create(), system_libvirt_uri,
                                 hosts={HOST: GROUP}, host_memory_mb=128)
    services = Services(deployment)
    status, body = services.client.request('POST', '/flavors',
                                           {'flavor': FLAVOR})
    assert status == 200, body
    # The configurations above (offload at once, short RPC timeout).
    services.restart('conductor')
    services.restart(HOST)
    server_id = services.client.boot('outbox', flavor=FLAVOR['id'],
                                     image=deployment.image_id, host=HOST)
    services.client.wait(server_id, 'ACTIVE')

    db = db_api.Database(deployment.database_url)
    outcomes = []
    action = 'shelve'
    victims = ['api', 'conductor', HOST] * 3
    rng.shuffle(victims)
    try:
        for victim in victims:
            delay = rng.uniform(0, 0.8)
            status, body = services.client.action(server_id, {action: None})
            assert status == 202, body
            time.sleep(delay)
            started = time.monotonic()
            services.restart(victim, kill=True)
            server = services.client.settle(server_id, timeout=BOUND)
            waited = time.monotonic() - started
            if server['status'] == EXPECTED[action]:
                outcome = 'carried out'
            else:
                faults_now = db.instance_get(server_id).faults
                assert faults_now, (action, victim, server)
                outcome = 'ended: %s' % faults_now[0].message
            outcomes.append((action, victim, round(delay, 3), outcome,
                             round(waited, 1)))
            _wait_clean(services.leftovers, outcomes)
            action = 'shelve' if server['status'] == 'ACTIVE' else 'unshelve'
    finally:
        db.dispose()
        with capsys.disabled():
            print('\nrandom kills of the separate services (seed %d):' % seed)
            for row in outcomes:
                print('  %-9s %-10s killed after %.3f s -> %s (settled %.1f s '
                      'after the kill)' % row)
    # A round may end with a fault instead: the group has one host, so an
    # unshelve whose host was killed before it started the work finds no
    # other (NoValidHost, at once). Never stuck, never silently lost (each
    # round above settled with a fault or the outcome, nothing left over).
    assert sum(o[3] == 'carried out' for o in outcomes) >= len(victims) // 2, \
        outcomes
