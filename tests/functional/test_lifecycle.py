"""Partial-offload lifecycle through the REST API on libvirt's test driver:
the domain, the disk file and the host's usage are checked where they live,
not through the API's own account of them."""

import os
import time

import libvirt

from tests.functional.conftest import disk_of
from tests.functional.conftest import qemu_io

TINY = {'vcpus': 1, 'memory_mb': 512}


def _domain_uuids(uri: str = 'test:///default') -> dict[str, int]:
    conn = libvirt.open(uri)
    try:
        return {d.UUIDString(): d.state()[0]
                for d in conn.listAllDomains()}
    finally:
        conn.close()


def test_shelve_unshelve_keeps_disk_and_frees_capacity(aio, client):
    server_id = client.boot('keeper', host='host-a1')
    server = client.wait(server_id, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-a1'
    assert _domain_uuids().get(server_id) == libvirt.VIR_DOMAIN_RUNNING
    disk = disk_of(aio, server_id)
    before = client.hypervisor('host-a1')
    assert before['vcpus_used'] == TINY['vcpus']
    assert before['memory_mb_used'] == TINY['memory_mb']

    qemu_io(disk, 'write -P 0xab 1M 1M')
    inode = os.stat(disk).st_ino

    assert client.action(server_id, {'shelve': None})[0] == 202
    shelved = client.wait(server_id, 'SHELVED_OFFLOADED')
    assert server_id not in _domain_uuids()
    assert os.stat(disk).st_ino == inode
    assert shelved['OS-EXT-SRV-ATTR:host'] is None
    retained = shelved['lifecycle:retained_disk']
    assert retained['storage_group'] == 'group-a'
    assert retained['host'] == 'host-a1'
    assert retained['location'] == '%s/disk' % server_id
    freed = client.hypervisor('host-a1')
    assert freed['vcpus_used'] == before['vcpus_used'] - TINY['vcpus']
    assert (freed['memory_mb_used'] ==
            before['memory_mb_used'] - TINY['memory_mb'])

    assert client.action(server_id, {'unshelve': None})[0] == 202
    server = client.wait(server_id, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-a1'
    assert server['lifecycle:retained_disk'] is None
    assert _domain_uuids().get(server_id) == libvirt.VIR_DOMAIN_RUNNING
    assert aio.driver.get_disk_paths(server_id) == [disk]
    assert os.stat(disk).st_ino == inode
    qemu_io(disk, 'read -P 0xab 1M 1M')
    assert client.hypervisor('host-a1')['memory_mb_used'] == \
        before['memory_mb_used']


def test_delete_while_offloaded_removes_only_its_disk(aio, client):
    keep = client.boot('neighbour', host='host-a1')
    doomed = client.boot('doomed', host='host-a1')
    client.wait(keep, 'ACTIVE')
    client.wait(doomed, 'ACTIVE')
    client.action(doomed, {'shelve': None})
    client.wait(doomed, 'SHELVED_OFFLOADED')
    storage = aio.storage_path('group-a')
    bases = os.listdir(os.path.join(storage, '_base'))
    assert bases

    status, _ = client.request('DELETE', '/servers/%s' % doomed)
    assert status == 204
    deadline = time.monotonic() + 30
    while client.request('GET', '/servers/%s' % doomed)[0] != 404:
        assert time.monotonic() < deadline, 'delete did not finish'
        time.sleep(0.05)
    assert not os.path.exists(os.path.join(storage, doomed))
    assert os.path.exists(disk_of(aio, keep))
    assert sorted(os.listdir(os.path.join(storage, '_base'))) == sorted(bases)
    assert client.server(keep)['status'] == 'ACTIVE'


def test_stop_start(aio, client):
    server_id = client.boot('toggle')
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'os-stop': None})
    client.wait(server_id, 'SHUTOFF')
    assert _domain_uuids()[server_id] == libvirt.VIR_DOMAIN_SHUTOFF
    client.action(server_id, {'os-start': None})
    client.wait(server_id, 'ACTIVE')
    assert _domain_uuids()[server_id] == libvirt.VIR_DOMAIN_RUNNING


def test_offload_later_by_periodic_task(make_aio, client_for):
    aio = make_aio(extra={(None, 'shelved_offload_time'): 1,
                          (None, 'shelved_poll_interval'): 1})
    client = client_for(aio.url)
    server_id = client.boot('later', host='host-a2')
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'shelve': None})
    shelved = client.wait(server_id, 'SHELVED')
    # Shelved but not offloaded: still on its host, still claimed.
    assert shelved['OS-EXT-SRV-ATTR:host'] == 'host-a2'
    assert client.hypervisor('host-a2')['memory_mb_used'] == 512
    client.wait(server_id, 'SHELVED_OFFLOADED', timeout=30)
    assert client.hypervisor('host-a2')['memory_mb_used'] == 0


def test_never_offload_then_explicit_offload(make_aio, client_for):
    aio = make_aio(extra={(None, 'shelved_offload_time'): -1})
    client = client_for(aio.url)
    server_id = client.boot('manual')
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED')
    # Unshelve from SHELVED powers the same domain on again.
    client.action(server_id, {'unshelve': None})
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED')
    assert client.action(server_id, {'shelveOffload': None})[0] == 202
    client.wait(server_id, 'SHELVED_OFFLOADED')
    assert server_id not in _domain_uuids()


def test_unshelve_of_a_shelved_instance_whose_domain_vanished(make_aio,
                                                              client_for):
    """The domain of a SHELVED (not offloaded) instance undefined behind
    the service's back: unshelve defines it again from the kept disk."""
    aio = make_aio(extra={(None, 'shelved_offload_time'): -1})
    client = client_for(aio.url)
    server_id = client.boot('vanished', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    disk = disk_of(aio, server_id)
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED')
    conn = libvirt.open('test:///default')
    try:
        conn.lookupByUUIDString(server_id).undefine()
    finally:
        conn.close()
    assert server_id not in _domain_uuids()
    client.action(server_id, {'unshelve': None})
    server = client.wait(server_id, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-a1'
    assert aio.driver.get_disk_paths(server_id) == [disk]
    assert server_id in _domain_uuids()
