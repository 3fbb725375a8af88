"""Unshelve of a volume-backed server whose Cinder export this service
cannot use: the unshelve ends with a fault in the server document, the
server stays offloaded, its volume and its attachment are intact, and
libvirt never gets a domain.

The bad connection info comes from Cinder itself. The server boots and
shelves on Cinder's RBD driver (the ``rbd`` backend on the session's Ceph);
then the operator re-homes the volume with ``cinder-manage volume
update_host`` (Cinder's step after renaming a backend in a multi-backend
configuration) to a backend whose export is broken:

* ``rbd-no-monitor``: Cinder's RBD driver on the same pool whose monitor
  lookup finds none, so the ``rbd`` connection names no monitor host;
* ``unknown-protocol``: a driver exporting over ``scaleio``, a protocol no
  compute host here attaches (cinder_test_drivers.py).

The unshelve's attachment update then really goes to that backend's
volume service, which answers with the bad connection. Moving the volume
back to ``rbd`` makes the next unshelve succeed: nothing of the volume or
its bookkeeping was lost. The same export at build time sends the server
to ERROR with the same fault.
"""


import pytest
from cinderclient import exceptions as cinder_exc

from lifecycle.compute import volumes
from tests.conftest import live_domain
from tests.functional import cinder_fixture
from tests.functional import volume_aio
from tests.harness import polling

pytestmark = pytest.mark.slow

cinder_server = cinder_fixture.cinder_server
TIMEOUT = 120

# backend -> (what the fault must say about its export, the unshelve's
# target host). scaleio: cinder_test_drivers.UNKNOWN_PROTOCOL, a module only
# Cinder's processes import.
BAD_EXPORTS = {
    'rbd-no-monitor': ("is exported as 'rbd': the connection names no Ceph "
                       "monitor (hosts is empty)", 'host-b1'),
    'unknown-protocol': ("is exported as 'scaleio': this service attaches "
                         "iscsi, rbd volumes only", None),
}


@pytest.fixture
def aio(make_aio, system_libvirt_uri, cinder_server):
    yield volume_aio.start(make_aio, cinder_server,
                           uri=system_libvirt_uri)
    volume_aio.stop(cinder_server)


def _wait(predicate, timeout=TIMEOUT, what=''):
    return polling.wait_until(predicate, timeout, what, interval=0.2)


def _rbd_volume(cinder):
    vol = cinder.volumes.create(1, name='bad-export-root', volume_type='rbd')
    vol = _wait(lambda: (lambda v: v if v.status != 'creating' else None)(
        cinder.volumes.get(vol.id)), what='volume %s' % vol.id)
    assert vol.status == 'available', vol.status
    cinder.volumes.set_bootable(vol.id, True)
    return vol.id


def _volume_host(cinder, volume_id):
    return getattr(cinder.volumes.get(volume_id), 'os-vol-host-attr:host')


def _assert_reserved_for(cinder, cinder_server, aio, server_id, volume_id):
    """The instance's recorded attachment is a reserved one without
    connector, and the volume has no other; returns its id."""
    sysmeta = aio.db.instance_get(server_id).system_metadata
    attachment_id = sysmeta[volumes.ROOT_ATTACHMENT_ID]
    assert volumes.STALE_ATTACHMENT_ID not in sysmeta
    attachment = cinder.attachments.show(attachment_id).to_dict()
    assert attachment['status'] == 'reserved', attachment
    assert attachment['instance'] == server_id
    assert not attachment['connection_info']
    assert cinder_server.attachment_row(attachment_id) == {
        'attach_status': 'reserved', 'attached_host': None,
        'connector': None, 'deleted': False}
    vol = cinder.volumes.get(volume_id)
    assert vol.status == 'reserved'
    assert [a.id for a in cinder.attachments.list(
        search_opts={'volume_id': volume_id})] == [attachment_id]
    return attachment_id


@pytest.mark.parametrize('backend', sorted(BAD_EXPORTS))
def test_unshelve_with_a_bad_export_faults_and_keeps_the_volume(
        aio, client_for, cinder_server, system_libvirt_uri, backend):
    client = client_for(aio.url)
    cinder = cinder_server.client()
    volume_id = _rbd_volume(cinder)
    rbd_image = cinder_server.rbd_image(volume_id)
    good = cinder_server.backend_host('rbd')
    bad = cinder_server.backend_host(backend)

    status, body = client.request('POST', '/servers', {'server': {
        'name': 'bad-export-vm', 'flavorRef': '1', 'networks': 'none',
        'host': 'host-a1', 'block_device_mapping_v2': [{
            'source_type': 'volume', 'destination_type': 'volume',
            'boot_index': 0, 'uuid': volume_id,
            'delete_on_termination': True}]}})
    assert status == 202, body
    server_id = body['server']['id']
    client.wait(server_id, 'ACTIVE', timeout=TIMEOUT)
    assert client.action(server_id, {'shelve': None})[0] == 202
    client.wait(server_id, 'SHELVED_OFFLOADED', timeout=TIMEOUT)
    reserved = _assert_reserved_for(cinder, cinder_server, aio, server_id,
                                    volume_id)
    assert _volume_host(cinder, volume_id) == good

    cinder_server.update_host(good, bad)
    moved = True
    try:
        assert _volume_host(cinder, volume_id) == bad
        expected, target = BAD_EXPORTS[backend]
        status, body = client.action(
            server_id, {'unshelve': {'host': target} if target else None})
        assert status == 202, body
        server = client.settle(server_id, timeout=TIMEOUT)

        assert server['status'] == 'SHELVED_OFFLOADED', server
        assert server['OS-EXT-SRV-ATTR:host'] is None
        # The volume's own fault, not a "no valid host".
        assert server.get('fault', {}).get('details') == 'InvalidVolume', (
            server)
        fault = server['fault']
        assert fault['code'] == 400, fault
        assert fault['message'] == 'Invalid volume: volume %s %s' % (
            volume_id, expected), fault
        assert live_domain(system_libvirt_uri, server_id) is None
        for host in aio.hosts:
            assert client.hypervisor(host)['memory_mb_used'] == 0, host

        # Cinder was really asked, once: the reserved attachment got one
        # host's connector (and answered with the bad export), then was
        # replaced by a new reserved one; no other host tried (it would
        # fail the same way).
        row = cinder_server.attachment_row(reserved)
        assert row['deleted'], row
        assert row['connector']['host'] == (target or row['attached_host'])
        again = _assert_reserved_for(cinder, cinder_server, aio, server_id,
                                     volume_id)
        assert cinder_server.attachment_ids(volume_id)[-2:] == [reserved,
                                                                again]
        assert rbd_image in cinder_server.pool_images()
        assert server['os-extended-volumes:volumes_attached'] == [
            {'id': volume_id, 'delete_on_termination': True}]

        # The operator puts the volume back: the same server unshelves.
        cinder_server.update_host(bad, good)
        moved = False
        status, body = client.action(server_id,
                                     {'unshelve': {'host': 'host-b1'}})
        assert status == 202, body
        server = client.wait(server_id, 'ACTIVE', timeout=TIMEOUT)
        assert server['OS-EXT-SRV-ATTR:host'] == 'host-b1'
        assert live_domain(system_libvirt_uri, server_id)['running']
        assert 'fault' not in server
    finally:
        if moved:
            cinder_server.update_host(bad, good)

    assert client.request('DELETE', '/servers/%s' % server_id)[0] == 204
    _wait(lambda: client.request('GET', '/servers/%s' % server_id)[0]
          == 404, what='delete')
    _wait(lambda: rbd_image not in cinder_server.pool_images(),
          what='volume out of the pool')


def test_build_from_a_volume_with_a_bad_export_errors_with_its_fault(
        aio, client_for, cinder_server, system_libvirt_uri):
    """The same export at build: the server goes to ERROR with the
    volume's fault, nothing in libvirt; delete releases the attachment and
    the volume."""
    client = client_for(aio.url)
    cinder = cinder_server.client()
    vol = cinder.volumes.create(1, name='bad-export-build',
                                volume_type='unknown-protocol')
    _wait(lambda: cinder.volumes.get(vol.id).status != 'creating',
          what='volume %s' % vol.id)
    assert cinder.volumes.get(vol.id).status == 'available'
    cinder.volumes.set_bootable(vol.id, True)

    status, body = client.request('POST', '/servers', {'server': {
        'name': 'bad-export-build', 'flavorRef': '1', 'networks': 'none',
        'block_device_mapping_v2': [{
            'source_type': 'volume', 'destination_type': 'volume',
            'boot_index': 0, 'uuid': vol.id,
            'delete_on_termination': True}]}})
    assert status == 202, body
    server_id = body['server']['id']
    server = client.wait(server_id, 'ERROR', timeout=TIMEOUT)
    assert server['fault']['code'] == 400, server['fault']
    assert server['fault']['message'] == (
        'Invalid volume: volume %s %s' % (vol.id,
                                          BAD_EXPORTS['unknown-protocol'][0]))
    assert live_domain(system_libvirt_uri, server_id) is None
    for host in aio.hosts:
        assert client.hypervisor(host)['memory_mb_used'] == 0, host

    assert client.request('DELETE', '/servers/%s' % server_id)[0] == 204
    _wait(lambda: client.request('GET', '/servers/%s' % server_id)[0]
          == 404, what='delete')
    _wait(lambda: _gone(cinder, vol.id), what='volume deleted')


def _gone(cinder, volume_id):
    try:
        cinder.volumes.get(volume_id)
    except cinder_exc.NotFound:
        return True
    return False
