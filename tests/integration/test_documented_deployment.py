"""The multi-host deployment exactly as doc/source/multihost.rst describes
it, step by step, with no workaround.

* RabbitMQ: a fresh virtual host and user (``rabbitmqctl add_vhost``,
  ``add_user``, ``set_permissions``); no ``rpc_topic_prefix``, as the guide
  says (its own virtual host is the usual way).
* PostgreSQL: a fresh database owned by a fresh user.
* ``lifecycle.conf`` shared by every service, ``lifecycle-compute.conf``
  per compute host (``host``, ``instances_path``, ``[compute]``).
* ``lifecycle-manage db sync`` (schema and the default flavors),
  ``lifecycle-manage image import FILE --name NAME``.
* ``lifecycle-conductor``, ``lifecycle-api`` and three
  ``lifecycle-compute`` processes: compute-a1 and compute-a2 share one
  directory (group-a's NFS export, mounted at the same path), compute-b1
  has its own (group-b).
* ``lifecycle-manage service list``; the aggregates with the ``openstack``
  client commands of the guide; the compute services restarted after
  joining their group.
* The guide's check: ``openstack server create --flavor 1 --hint
  storage_group=...``, ``server shelve``, ``server unshelve`` in both
  groups, real QEMU guests; compute-a1 drained with ``lifecycle-manage
  service disable`` so that group-a's unshelve must move to compute-a2 --
  in its group, on the same disk file (inode), ACTIVE.
"""

import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid

import pytest

from lifecycle.image import local as local_image
from tests.conftest import live_domain
from tests.harness.deployment import DatabaseServer
from tests.harness.deployment import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUPS = {'compute-a1': 'group-a', 'compute-a2': 'group-a',
          'compute-b1': 'group-b'}
WAIT = 120
SECRET = 'secret-%s' % uuid.uuid4().hex[:8]
OPENSTACK = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         'openstack_cli.py')


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True,
                            timeout=180, **kwargs)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def _bin(name: str) -> str:
    """A command of the virtualenv (lifecycle-manage, openstack)."""
    return os.path.join(os.path.dirname(sys.executable), name)


@pytest.fixture
def rabbit_vhost(rabbit_url):
    """The guide's RabbitMQ step: a virtual host and a user of its own."""
    require_ctl = subprocess.run(['rabbitmqctl', 'status'],
                                 capture_output=True, timeout=60)
    assert require_ctl.returncode == 0, 'rabbitmqctl cannot reach RabbitMQ'
    name = 'lifecycle-doc-%s' % uuid.uuid4().hex[:10]
    _run(['rabbitmqctl', 'add_vhost', name])
    _run(['rabbitmqctl', 'add_user', name, SECRET])
    _run(['rabbitmqctl', 'set_permissions', '-p', name, name,
          '.*', '.*', '.*'])
    host = urllib.parse.urlsplit(rabbit_url)
    yield 'rabbit://%s:%s@%s:%d/%s' % (name, SECRET, host.hostname,
                                       host.port or 5672, name)
    subprocess.run(['rabbitmqctl', 'delete_user', name], capture_output=True,
                   timeout=60)
    subprocess.run(['rabbitmqctl', 'delete_vhost', name],
                   capture_output=True, timeout=60)


@pytest.fixture
def database():
    """The guide's database step: a user, and a database it owns."""
    server = DatabaseServer('postgresql')
    url = server.create()  # an empty database, dropped at the end
    name = url.rsplit('/', 1)[1]
    user = 'lc_doc_%s' % uuid.uuid4().hex[:10]
    with server._admin.connect() as conn:
        conn.exec_driver_sql("CREATE USER %s PASSWORD '%s'" % (user, SECRET))
        conn.exec_driver_sql('ALTER DATABASE %s OWNER TO %s' % (name, user))
    yield 'postgresql+psycopg2://%s:%s@127.0.0.1:5432/%s' % (user, SECRET,
                                                           name)
    server.drop_all()
    with server._admin.connect() as conn:
        conn.exec_driver_sql('DROP USER IF EXISTS %s' % user)
    server._admin.dispose()


def _write(path: str, text: str) -> str:
    with open(path, 'w') as f:
        f.write(text)
    return path


class Operator:
    """Runs the guide's commands; keeps the processes for teardown."""

    def __init__(self, deployment, etc: str, shared: str) -> None:
        self.deployment = deployment  # conftest's: teardown, guests
        self.etc = etc
        self.shared = shared
        self.log_dir = deployment.log_dir
        self.url = None

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return _run([_bin('lifecycle-manage'), '--config-file', self.shared,
                     *args], cwd='/')

    def start(self, name: str, command: str, *files: str) -> str:
        old = self.deployment.processes.pop(name, None)
        if old is not None:
            assert old.stop() == 0, old.tail()
        log = os.path.join(self.log_dir, '%s-%d.log' % (
            name, time.monotonic_ns()))
        process = ServiceProcess(name, command, [self.shared, *files], log,
                                 standbys=self.deployment.standbys)
        self.deployment.processes[name] = process
        return process.wait_ready()

    def openstack(self, *args: str) -> str:
        # The guide's ``openstack`` commands; its ``--wait`` polls every
        # 0.5 s here, not every 5 s (tests/integration/openstack_cli.py).
        return _run([sys.executable, OPENSTACK, '--os-auth-type', 'none',
                     '--os-endpoint', self.url,
                     '--os-compute-api-version', '2.91', *args],
                    cwd='/').stdout

    def server(self, name: str) -> dict:
        return json.loads(self.openstack('server', 'show', name, '-f',
                                         'json'))


@pytest.mark.timeout(900)
def test_documented_multihost_deployment(make_deployment, rabbit_vhost,
                                         database, system_libvirt_uri,
                                         tmp_path):
    # The conftest deployment object only provides directories and the
    # teardown (processes stopped, guests removed); every config file and
    # command below is the guide's.
    # Standby processes: the compute hosts' restarts without seconds of
    # imports each (the services' starts themselves are cold ones).
    deployment = make_deployment(database, system_libvirt_uri, hosts={},
                                 start=False, standby=True)
    etc = str(tmp_path / 'etc-lifecycle')
    os.makedirs(etc)
    images_dir = os.path.join(deployment.root, 'srv-images')
    # The guide's sections, with test values where it leaves the choice:
    # port 0 (a free port, printed in the ready line), a guest that powers
    # off at once (the blank image has no OS to answer ACPI; 60 s would only
    # wait), a 2 s heartbeat, and each host's capacity stated rather than
    # this machine's.
    shared = _write(os.path.join(etc, 'lifecycle.conf'), '\n'.join([
        '[DEFAULT]',
        'transport_url = %s' % rabbit_vhost,
        'shutdown_timeout = 0',
        'shelved_offload_time = 0',
        '[database]',
        'connection = %s' % database,
        '[image]',
        'source = local',
        'local_dir = %s' % images_dir,
        '[api]',
        'host = 127.0.0.1',
        'port = 0',
        'auth_strategy = noauth2',
        '[compute]',
        'report_interval = 2',
        'service_down_time = 60',
        '[libvirt]',
        'connection_uri = %s' % system_libvirt_uri,
        '']))
    op = Operator(deployment, etc, shared)

    # The database: schema and default flavors.
    synced = op.manage('db', 'sync')
    assert 'm1.tiny' in synced.stdout, synced.stdout

    # Images.
    image_file = os.path.join(deployment.log_dir, 'cirros.qcow2')
    local_image.make_blank_image(image_file, 64)
    imported = op.manage('image', 'import', image_file, '--name', 'cirros',
                         '--format', 'json')
    image = json.loads(imported.stdout)
    assert image['name'] == 'cirros' and image['disk_format'] == 'qcow2'

    # The controller.
    op.start('conductor', 'conductor')
    op.url = op.start('api', 'api').removeprefix('at ').strip()

    # Each compute host: its storage mounted at the group's path, its file.
    storage = {group: os.path.join(deployment.root, 'nfs', group)
               for group in set(GROUPS.values())}
    compute_conf = {}
    for host, group in GROUPS.items():
        os.makedirs(storage[group], exist_ok=True)
        compute_conf[host] = _write(
            os.path.join(etc, 'lifecycle-compute-%s.conf' % host),
            '\n'.join(['[DEFAULT]', 'host = %s' % host,
                       'instances_path = %s' % storage[group],
                       '[compute]', 'vcpus = 4', 'memory_mb = 1024', '']))
        op.start(host, 'compute', compute_conf[host])

    listed = json.loads(op.manage('service', 'list', '--format',
                                  'json').stdout)
    rows = listed if isinstance(listed, list) else listed['services']
    assert sorted(r['host'] for r in rows) == sorted(GROUPS)

    # Storage groups, then a restart of the compute services that joined.
    for group in ('group-a', 'group-b'):
        op.openstack('aggregate', 'create', '--property',
                     'storage_group=%s' % group, 'storage-%s' % group)
        for host in sorted(h for h, g in GROUPS.items() if g == group):
            op.openstack('aggregate', 'add', 'host', 'storage-%s' % group,
                         host)
    for host, group in GROUPS.items():
        where = op.start(host, 'compute', compute_conf[host])
        assert '(storage group %s,' % group in where, where
    rows = json.loads(op.manage('service', 'list', '--format',
                                'json').stdout)
    rows = rows if isinstance(rows, list) else rows['services']
    assert {r['host']: r['storage_group'] for r in rows} == GROUPS
    assert {r['state'] for r in rows} == {'up'}, rows

    # The check: boot, shelve, unshelve in each group.
    servers = {}
    for group in ('group-a', 'group-b'):
        name = 'vm-%s' % group
        op.openstack('server', 'create', '--flavor', '1', '--image',
                     'cirros', '--hint', 'storage_group=%s' % group,
                     '--nic', 'none', '--wait', name)
        server = op.server(name)
        assert server['status'] == 'ACTIVE', server
        host = server['OS-EXT-SRV-ATTR:host']
        assert GROUPS[host] == group, server
        disk = os.path.join(storage[group], server['id'], 'disk')
        servers[group] = (name, server['id'], host, disk,
                          os.stat(disk).st_ino)
        assert live_domain(system_libvirt_uri, server['id']) == {
            'running': True, 'disks': [disk]}
        op.openstack('server', 'shelve', '--wait', name)
        shelved = op.server(name)
        assert shelved['status'] == 'SHELVED_OFFLOADED', shelved
        assert live_domain(system_libvirt_uri, server['id']) is None
        assert os.stat(disk).st_ino == servers[group][4]

    # Drain group-a's original host: its unshelve must stay in group-a.
    name, server_id, original, disk, inode = servers['group-a']
    op.manage('service', 'disable', original)
    op.openstack('server', 'unshelve', '--wait', name)
    server = op.server(name)
    assert server['status'] == 'ACTIVE', server
    other = next(h for h, g in GROUPS.items()
                 if g == 'group-a' and h != original)
    assert server['OS-EXT-SRV-ATTR:host'] == other, server
    assert os.stat(disk).st_ino == inode
    assert live_domain(system_libvirt_uri, server_id) == {
        'running': True, 'disks': [disk]}
    op.manage('service', 'enable', original)

    name, server_id, original, disk, inode = servers['group-b']
    op.openstack('server', 'unshelve', '--wait', name)
    server = op.server(name)
    assert server['status'] == 'ACTIVE', server
    assert server['OS-EXT-SRV-ATTR:host'] == 'compute-b1'
    assert os.stat(disk).st_ino == inode
    assert live_domain(system_libvirt_uri, server_id) == {
        'running': True, 'disks': [disk]}

    for name in ('vm-group-a', 'vm-group-b'):
        op.openstack('server', 'delete', '--wait', name)
    statuses = deployment.stop()
    assert statuses == dict.fromkeys(statuses, 0), statuses
