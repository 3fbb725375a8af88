"""The services as separate processes: ``lifecycle-api``,
``lifecycle-conductor`` and three ``lifecycle-compute`` over RabbitMQ, on
PostgreSQL and on MariaDB, with real QEMU guests on ``qemu:///system``.

Storage groups: host-a1 and host-a2 share one directory (group-a, the
stand-in for NFS), host-b1 has its own (group-b). Each host offers 128 MiB,
two guests of the 64 MiB test flavor, so "full" is two guests.
"""

import os
import time

import pytest

from tests.conftest import live_domain
from tests.functional.conftest import qemu_io

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTS = {'host-a1': 'group-a', 'host-a2': 'group-a', 'host-b1': 'group-b'}
FLAVOR = {'id': 'it-64', 'name': 'it.64', 'ram': 64, 'vcpus': 1, 'disk': 1}
HOST_MEMORY_MB = 128
PATTERN = 'write -P 0x5a 4M 2M'
WAIT = 90


class Cloud:
    """The REST client plus checks that every process is still alive."""

    def __init__(self, deployment, client) -> None:
        self.deployment = deployment
        self.client = client

    def wait(self, server_id: str, status: str, *, fault: bool = False,
             timeout: float = WAIT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            self.deployment.check_alive()
            server = self.client.server(server_id)
            if (server['status'] == status and
                    server['OS-EXT-STS:task_state'] is None and
                    (not fault or 'fault' in server)):
                return server
            if server['status'] == 'ERROR' and status != 'ERROR':
                raise AssertionError('server %s went to ERROR: %s' % (
                    server_id, server.get('fault')))
            if time.monotonic() > deadline:
                raise AssertionError('server %s still %s/%s, wanted %s%s' % (
                    server_id, server['status'],
                    server['OS-EXT-STS:task_state'], status,
                    ' with a fault' if fault else ''))
            time.sleep(0.1)

    def boot(self, name: str, host: str) -> str:
        return self.client.boot(name, flavor=FLAVOR['id'],
                                image=self.deployment.image_id, host=host)

    def action(self, server_id: str, action: str) -> None:
        status, body = self.client.action(server_id, {action: None})
        assert status == 202, (action, status, body)

    def memory_used(self, host: str) -> int:
        return self.client.hypervisor(host)['memory_mb_used']

    def fill(self, host: str) -> list[str]:
        """Boot guests pinned to ``host`` until it has no room for one."""
        free = HOST_MEMORY_MB - self.memory_used(host)
        fillers = [self.boot('filler-%s-%d' % (host, i), host)
                   for i in range(free // FLAVOR['ram'])]
        for server_id in fillers:
            assert self.wait(server_id, 'ACTIVE')[
                'OS-EXT-SRV-ATTR:host'] == host
        assert HOST_MEMORY_MB - self.memory_used(host) < FLAVOR['ram']
        return fillers

    def delete(self, server_id: str) -> None:
        status, body = self.client.request('DELETE',
                                           '/servers/%s' % server_id)
        assert status == 204, (status, body)
        deadline = time.monotonic() + WAIT
        while self.client.request('GET', '/servers/%s' % server_id)[0] != 404:
            self.deployment.check_alive()
            assert time.monotonic() < deadline, 'delete did not finish'
            time.sleep(0.1)


@pytest.fixture
def cloud(make_deployment, database_server, system_libvirt_uri, client_for):
    deployment = make_deployment(
        database_server.create(), system_libvirt_uri, hosts=HOSTS,
        host_memory_mb=HOST_MEMORY_MB)
    client = client_for(deployment.url)
    status, body = client.request('POST', '/flavors', {'flavor': FLAVOR})
    assert status == 200, (status, body)
    return Cloud(deployment, client)


def test_unshelve_stays_in_storage_group(cloud):
    uri = cloud.deployment.libvirt_uri
    server_id = cloud.boot('target', 'host-a1')
    assert cloud.wait(server_id, 'ACTIVE')['OS-EXT-SRV-ATTR:host'] == \
        'host-a1'
    disk = cloud.deployment.disk_of(server_id, 'group-a')
    assert live_domain(uri, server_id) == {'running': True, 'disks': [disk]}

    # QEMU holds the image lock while it runs: write with the guest off.
    cloud.action(server_id, 'os-stop')
    cloud.wait(server_id, 'SHUTOFF')
    qemu_io(disk, PATTERN)
    inode = os.stat(disk).st_ino

    cloud.action(server_id, 'shelve')
    shelved = cloud.wait(server_id, 'SHELVED_OFFLOADED')
    assert shelved['OS-EXT-SRV-ATTR:host'] is None
    assert shelved['lifecycle:retained_disk']['storage_group'] == 'group-a'
    assert live_domain(uri, server_id) is None
    assert cloud.memory_used('host-a1') == 0

    # host-a1, the original host, has no room: the unshelve moves inside
    # group-a (host-b1 has room too, but cannot see the disk).
    assert len(cloud.fill('host-a1')) == 2
    cloud.action(server_id, 'unshelve')
    server = cloud.wait(server_id, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-a2'
    assert live_domain(uri, server_id) == {'running': True, 'disks': [disk]}
    assert os.stat(disk).st_ino == inode
    qemu_io(disk, PATTERN.replace('write', 'read'))
    qemu_io(disk, 'read -P 0x4c 0 64k')  # the base image under the overlay
    assert cloud.memory_used('host-a2') == FLAVOR['ram']
    assert cloud.memory_used('host-b1') == 0

    # The whole group full: the unshelve fails visibly and loses nothing.
    cloud.action(server_id, 'shelve')
    cloud.wait(server_id, 'SHELVED_OFFLOADED')
    fillers_a2 = cloud.fill('host-a2')
    cloud.action(server_id, 'unshelve')
    failed = cloud.wait(server_id, 'SHELVED_OFFLOADED', fault=True)
    assert 'No valid host' in failed['fault']['message'], failed['fault']
    assert 'group-a' in failed['fault']['message'], failed['fault']
    assert failed['OS-EXT-SRV-ATTR:host'] is None
    assert failed['lifecycle:retained_disk']['storage_group'] == 'group-a'
    assert live_domain(uri, server_id) is None
    assert os.stat(disk).st_ino == inode
    qemu_io(disk, PATTERN.replace('write', 'read'))
    assert cloud.memory_used('host-b1') == 0

    # Capacity back in the group: the same unshelve now succeeds.
    cloud.delete(fillers_a2[0])
    cloud.action(server_id, 'unshelve')
    server = cloud.wait(server_id, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-a2'
    assert live_domain(uri, server_id) == {'running': True, 'disks': [disk]}
    assert os.stat(disk).st_ino == inode
    qemu_io(disk, PATTERN.replace('write', 'read'))

    # Every service stops cleanly on SIGTERM.
    statuses = cloud.deployment.stop()
    assert statuses == dict.fromkeys(statuses, 0), statuses


def test_services_refuse_an_unmigrated_database(make_deployment,
                                                database_server):
    """``lifecycle-manage db sync`` is the operator's step: a service started
    before it exits at once and says what to run."""
    deployment = make_deployment(database_server.create(), 'test:///default',
                                 hosts={}, start=False)
    conductor = deployment.spawn('conductor', 'conductor')
    assert conductor.wait_exit() == 2
    log = conductor.log()
    assert 'schema is at revision none' in log, log
    assert 'lifecycle-manage --config-file %s db sync' % (
        deployment.common_conf) in log, log

    synced = deployment.manage('db', 'sync')
    assert synced.returncode == 0, synced.stdout + synced.stderr
    deployment.spawn('conductor-2', 'conductor').wait_ready()


def test_services_refuse_sqlite(make_deployment, tmp_path):
    deployment = make_deployment(
        'sqlite:///%s' % (tmp_path / 'lifecycle.sqlite'), 'test:///default',
        hosts={}, start=False)
    synced = deployment.manage('db', 'sync')
    assert synced.returncode == 0, synced.stdout + synced.stderr
    api = deployment.spawn('api', 'api')
    assert api.wait_exit() == 2
    assert 'allow_sqlite = true' in api.log(), api.log()
    # Allowed explicitly (one machine): starts, with a warning.
    allowed = deployment.spawn('api-2', 'api',
                               {'DEFAULT': {'allow_sqlite': 'true'}})
    allowed.wait_ready()
    assert 'runs on SQLite' in allowed.log()
