"""Volume-backed instances through a real Cinder (cinder-api under gunicorn,
cinder-scheduler, cinder-volume; noauth, SQLite, RabbitMQ on a private
vhost: see cinder_fixture.py) whose volumes are RBD images in the session's
Ceph cluster (Cinder's own RBD driver).

The guests run on libvirt's test driver (``test:///default``): these tests
are about the attachment bookkeeping, placement and the API, and the
domain gets the network disk QEMU would open. The same life cycle on real
QEMU, with the data checked, is tests/functional/test_volume_backed_qemu.py.

Cinder's attachment delete asks Nova whether an attachment with a
connection is still in use; noauth gives Cinder no Keystone to find Nova
with, so the fixture's minimal local responder (``NovaResponder``) answers
exactly that call, from the lifecycle service's database: the attachment
the instance records for its root volume, or "not found" once the instance
is being deleted (Nova itself is never asked then: it deletes with a
service token, which noauth cannot carry).
"""

import os
import time

import libvirt
import pytest
from cinderclient import exceptions as cinder_exc

from lifecycle.compute import volumes
from lifecycle.conf import CONF
from lifecycle.volume import connector
from lifecycle.conductor import scheduler as scheduler_mod
from lifecycle.virt import domain_xml
from tests.functional import cinder_fixture
from tests.functional import volume_aio

pytestmark = pytest.mark.slow

cinder_server = cinder_fixture.cinder_server


@pytest.fixture
def aio(make_aio, cinder_server):
    yield volume_aio.start(make_aio, cinder_server)
    volume_aio.stop(cinder_server)


@pytest.fixture
def cinder(cinder_server):
    return cinder_server.client()


def _wait(predicate, timeout=60, what=''):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, 'timed out: %s' % what
        time.sleep(0.1)


def _volume(cinder, name='root', bootable=True, volume_type='rbd'):
    vol = cinder.volumes.create(1, name=name, volume_type=volume_type)
    vol = _wait(lambda: (lambda v: v if v.status != 'creating' else None)(
        cinder.volumes.get(vol.id)), what='volume %s' % vol.id)
    assert vol.status == 'available', vol.status
    if bootable:
        cinder.volumes.set_bootable(vol.id, True)
    return vol.id


def _bdm(volume_id, delete_on_termination=False, **extra):
    bdm = {'source_type': 'volume', 'destination_type': 'volume',
           'boot_index': 0, 'uuid': volume_id,
           'delete_on_termination': delete_on_termination}
    bdm.update(extra)
    return bdm


def _create(client, bdms, host=None, name='vol-vm', **extra):
    body = {'name': name, 'flavorRef': '1', 'networks': 'none',
            'block_device_mapping_v2': bdms}
    if host:
        body['host'] = host
    body.update(extra)
    return client.request('POST', '/servers', {'server': body})


def _boot(client, volume_id, host=None, delete_on_termination=False):
    status, body = _create(client, [_bdm(volume_id, delete_on_termination)],
                           host=host)
    assert status == 202, body
    server_id = body['server']['id']
    client.wait(server_id, 'ACTIVE')
    return server_id


def _sysmeta(aio, server_id):
    return aio.db.instance_get(server_id).system_metadata


def _attachment(cinder, attachment_id):
    try:
        return cinder.attachments.show(attachment_id).to_dict()
    except cinder_exc.NotFound:
        return None


def _domain_disks(server_id):
    conn = libvirt.open('test:///default')
    try:
        xml = conn.lookupByUUIDString(server_id).XMLDesc(0)
    finally:
        conn.close()
    return domain_xml.parse_disk_paths(xml), xml


def _assert_attached_to(cinder, cinder_server, aio, server_id, volume_id,
                        host):
    attachment_id = _sysmeta(aio, server_id)[volumes.ROOT_ATTACHMENT_ID]
    attachment = _attachment(cinder, attachment_id)
    assert attachment['status'] == 'attached', attachment
    assert attachment['instance'] == server_id
    assert attachment['connection_info']['driver_volume_type'] == 'rbd'
    row = cinder_server.attachment_row(attachment_id)
    assert row['attach_status'] == 'attached'
    assert row['attached_host'] == host
    _assert_os_brick_connector(row['connector'], host)
    vol = cinder.volumes.get(volume_id)
    assert vol.status == 'in-use'
    assert [(a['server_id'], a['host_name'], a['attachment_id'])
            for a in vol.attachments] == [(server_id, host, attachment_id)]
    disks, xml = _domain_disks(server_id)
    assert disks == ['rbd:%s/%s' % (cinder_fixture.RBD_POOL,
                                    cinder_server.rbd_image(volume_id))]
    assert "<disk type='network' device='disk'>" in xml
    return attachment_id


def _initiator_name():
    """The host's iSCSI initiator name as open-iscsi wrote it (root-only
    file: os-brick reads it through its privsep daemon)."""
    with open('/etc/iscsi/initiatorname.iscsi') as f:
        for line in f:
            if line.startswith('InitiatorName='):
                return line.strip().split('=', 1)[1]
    return None


def _assert_os_brick_connector(found, host):
    """What os-brick's get_connector_properties says about this host."""
    assert found['host'] == host
    assert found['ip'] == CONF.volume.my_ip
    assert found['multipath'] is False
    assert found['os_type'] == 'linux'
    assert found['platform'] == os.uname().machine
    # Read as root by os-brick's privsep daemon.
    assert found.get('initiator') == _initiator_name(), found


def _assert_reserved(cinder, cinder_server, attachment_id, server_id,
                     volume_id):
    attachment = _attachment(cinder, attachment_id)
    assert attachment['status'] == 'reserved', attachment
    assert attachment['instance'] == server_id
    assert not attachment['connection_info']
    row = cinder_server.attachment_row(attachment_id)
    assert row == {'attach_status': 'reserved', 'attached_host': None,
                   'connector': None, 'deleted': False}
    vol = cinder.volumes.get(volume_id)
    assert vol.status == 'reserved'


def _no_disk_anywhere(aio, server_id):
    for group in set(aio.hosts.values()):
        assert not os.path.exists(os.path.join(aio.storage_path(group),
                                               server_id))


def _fill(client, host, count=2):
    ids = [client.boot('filler', host=host) for _ in range(count)]
    for server_id in ids:
        client.wait(server_id, 'ACTIVE')
    return ids


def test_volume_backed_shelve_unshelve_in_another_group(aio, client, cinder,
                                                        cinder_server):
    images_before = {i['id'] for i in aio.images.list()}
    volume_id = _volume(cinder)
    server_id = _boot(client, volume_id, host='host-a1')
    server = client.server(server_id)
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-a1'
    assert server['image'] == ''
    assert server['os-extended-volumes:volumes_attached'] == [
        {'id': volume_id, 'delete_on_termination': False}]
    first = _assert_attached_to(cinder, cinder_server, aio, server_id,
                                volume_id, 'host-a1')
    _no_disk_anywhere(aio, server_id)

    # Shelve (offload at once): the volume stays, reserved, no connector.
    assert client.action(server_id, {'shelve': None})[0] == 202
    server = client.wait(server_id, 'SHELVED_OFFLOADED')
    assert server['OS-EXT-SRV-ATTR:host'] is None
    assert server['lifecycle:retained_disk'] is None
    assert server['os-extended-volumes:volumes_attached'] == [
        {'id': volume_id, 'delete_on_termination': False}]
    sysmeta = _sysmeta(aio, server_id)
    reserved = sysmeta[volumes.ROOT_ATTACHMENT_ID]
    assert reserved != first
    assert volumes.STALE_ATTACHMENT_ID not in sysmeta
    for key in ('shelved_disk', 'shelved_storage_group', 'shelved_image_id'):
        assert key not in sysmeta
    assert sysmeta['shelved_host'] == 'host-a1'
    _assert_reserved(cinder, cinder_server, reserved, server_id, volume_id)
    # The attached one is gone; Cinder asked "Nova", which named the new one.
    assert _attachment(cinder, first) is None
    assert cinder_server.attachment_row(first)['deleted']
    assert (server_id, volume_id, reserved) in cinder_server.nova.calls
    # No snapshot of any kind.
    _no_disk_anywhere(aio, server_id)
    assert {i['id'] for i in aio.images.list()} == images_before
    assert client.hypervisor('host-a1')['memory_mb_used'] == 0
    # No storage group to keep to.
    spec = scheduler_mod.Scheduler.request_spec(
        aio.db.instance_get(server_id), {})
    assert 'storage_group' not in spec.scheduler_hints

    # Group A full: the volume goes where there is room, in group B.
    _fill(client, 'host-a1')
    _fill(client, 'host-a2')
    assert client.action(server_id, {'unshelve': None})[0] == 202
    server = client.wait(server_id, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-b1'
    attached = _assert_attached_to(cinder, cinder_server, aio, server_id,
                                   volume_id, 'host-b1')
    assert attached == reserved  # updated in place, as Nova does
    _no_disk_anywhere(aio, server_id)

    # Delete: attachment gone, volume kept (delete_on_termination false).
    assert client.request('DELETE', '/servers/%s' % server_id)[0] == 204
    _wait(lambda: client.request('GET', '/servers/%s' % server_id)[0] ==
          404, what='delete')
    assert _attachment(cinder, attached) is None
    vol = _wait(lambda: (lambda v: v if v.status == 'available' else None)(
        cinder.volumes.get(volume_id)), what='volume available')
    assert vol.attachments == []
    assert {i['id'] for i in aio.images.list()} == images_before

    # delete_on_termination: deleting the offloaded instance deletes the
    # volume too (the API's local delete: the instance has no host).
    second_volume = _volume(cinder, name='root-2')
    second = _boot(client, second_volume, host='host-b1',
                   delete_on_termination=True)
    second_reserved = None
    client.action(second, {'shelve': None})
    client.wait(second, 'SHELVED_OFFLOADED')
    second_reserved = _sysmeta(aio, second)[volumes.ROOT_ATTACHMENT_ID]
    _assert_reserved(cinder, cinder_server, second_reserved, second,
                     second_volume)
    assert client.request('DELETE', '/servers/%s' % second)[0] == 204
    assert client.request('GET', '/servers/%s' % second)[0] == 404
    assert _attachment(cinder, second_reserved) is None

    def gone():
        try:
            cinder.volumes.get(second_volume)
        except cinder_exc.NotFound:
            return True
        return False
    _wait(gone, what='volume deleted')


def test_delete_on_termination_of_an_active_instance(aio, client, cinder):
    volume_id = _volume(cinder)
    server_id = _boot(client, volume_id, delete_on_termination=True)
    assert client.server(server_id)['os-extended-volumes:volumes_attached'] \
        == [{'id': volume_id, 'delete_on_termination': True}]
    attachment_id = _sysmeta(aio, server_id)[volumes.ROOT_ATTACHMENT_ID]
    assert client.request('DELETE', '/servers/%s' % server_id)[0] == 204
    _wait(lambda: client.request('GET', '/servers/%s' % server_id)[0] ==
          404, what='delete')
    assert _attachment(cinder, attachment_id) is None

    def gone():
        try:
            cinder.volumes.get(volume_id)
        except cinder_exc.NotFound:
            return True
        return False
    _wait(gone, what='volume deleted')


def test_bad_block_device_mappings_change_nothing(aio, client, cinder):
    good = _volume(cinder, name='good')
    not_bootable = _volume(cinder, name='plain', bootable=False)
    taken = _volume(cinder, name='taken')
    # Reserved by someone else: not available any more.
    other = cinder.attachments.create(taken, None,
                                      '00000000-0000-4000-8000-000000000001')
    image = client.default_image
    servers_before = client.request('GET', '/servers')[1]['servers']
    missing = '7b7e8e70-3c1a-4a51-8d3f-4a4f30f6f0c1'
    cases = {
        'unknown volume': [_bdm(missing)],
        'volume not available': [_bdm(taken)],
        'volume not bootable': [_bdm(not_bootable)],
        'two boot index 0': [_bdm(good), _bdm(not_bootable)],
        'no boot index 0': [_bdm(good, boot_index=1)],
        'extra volume': [_bdm(good), _bdm(not_bootable, boot_index=1)],
        'image source': [_bdm(good, source_type='image')],
        'blank source': [_bdm(good, source_type='blank')],
        'snapshot source': [_bdm(good, source_type='snapshot')],
        'local destination': [_bdm(good, destination_type='local')],
        'volume size': [_bdm(good, volume_size=2)],
        'not a uuid': [_bdm('not-a-volume')],
        'bad boolean': [_bdm(good, delete_on_termination='maybe')],
        'unknown key': [_bdm(good, colour='blue')],
    }
    for what, bdms in cases.items():
        status, body = _create(client, bdms)
        assert status == 400, (what, status, body)
        assert body['badRequest']['message'], what
    # An image and a root volume at once.
    status, body = _create(client, [_bdm(good)], imageRef=image)
    assert status == 400, body
    # Neither.
    status, body = _create(client, [])
    assert status == 400 and 'imageRef' in body['badRequest']['message']

    assert client.request('GET', '/servers')[1]['servers'] == servers_before
    for volume_id in (good, not_bootable):
        vol = cinder.volumes.get(volume_id)
        assert (vol.status, vol.attachments) == ('available', [])
    assert [a.id for a in cinder.attachments.list(
        search_opts={'volume_id': taken})] == [other['id']]
    cinder.attachments.delete(other['id'])


def test_offload_modes_do_not_apply(make_aio, cinder_server, client_for,
                                    cinder):
    """Full offload mode: shelving a volume-backed instance uploads
    nothing, and the shelveOffload escalation answers 409."""
    aio = volume_aio.start(make_aio, cinder_server,
                           extra={('shelve', 'offload_mode'): 'full'})
    client = client_for(aio.url)
    try:
        images_before = {i['id'] for i in aio.images.list()}
        volume_id = _volume(cinder)
        server_id = _boot(client, volume_id, host='host-a2')
        client.action(server_id, {'shelve': None})
        server = client.wait(server_id, 'SHELVED_OFFLOADED')
        assert 'fault' not in server
        assert 'shelved_image_id' not in _sysmeta(aio, server_id)
        assert {i['id'] for i in aio.images.list()} == images_before
        status, body = client.action(server_id, {'shelveOffload': None})
        assert status == 409, body
        assert 'volume-backed' in body['conflictingRequest']['message']
        assert client.server(server_id)['OS-EXT-STS:task_state'] is None
        client.action(server_id, {'unshelve': None})
        assert client.wait(server_id, 'ACTIVE')['OS-EXT-SRV-ATTR:host'] \
            == 'host-a2'
        client.request('DELETE', '/servers/%s' % server_id)
        _wait(lambda: client.request('GET', '/servers/%s' % server_id)[0]
              == 404, what='delete')
        assert cinder.volumes.get(volume_id).status == 'available'
    finally:
        volume_aio.stop(cinder_server)


def test_noauth_urls_with_a_project_id(cinder_server, cinder):
    """python-cinderclient's own ``noauth`` plugin: ``/v3/<project>``
    URLs and a ``<user>:<project>`` token, through the same [cinder]
    loading code."""
    from keystoneauth1 import loading as ks_loading

    from lifecycle.volume import cinder as cinder_api

    volume_id = _volume(cinder, name='by-project', volume_type='fake')
    project = 'a1b2c3d4e5f60718293a4b5c6d7e8f90'
    conf = cinder_server.make_conf()
    conf.clear_override('endpoint_override', group='cinder')
    conf.set_override('auth_type', 'noauth', group='cinder')
    conf.register_opts(ks_loading.get_auth_plugin_conf_options('noauth'),
                       group='cinder')
    conf.set_override('user_id', 'lifecycle', group='cinder')
    conf.set_override('project_id', project, group='cinder')
    conf.set_override('endpoint', cinder_server.endpoint, group='cinder')
    api = cinder_api.CinderAPI(conf)
    assert api.get(volume_id)['id'] == volume_id
    needle = '"GET /v3/%s/volumes/%s ' % (project, volume_id)

    def logged():
        # gunicorn writes the access log line after the answer.
        with open(os.path.join(cinder_server.log_dir, 'access.log')) as f:
            return needle in f.read()
    _wait(logged, timeout=10, what='access log')
    cinder.volumes.delete(volume_id)


def test_cinder_asks_the_responder_before_deleting(cinder_server, cinder):
    """The harness itself: Cinder refuses to delete an attachment that
    "Nova" says is in use, and deletes it once it is not."""
    volume_id = _volume(cinder, name='asked', volume_type='fake')
    server_id = '00000000-0000-4000-8000-0000000000aa'
    attachment_id = cinder.attachments.create(volume_id, None,
                                              server_id)['id']
    cinder.attachments.update(attachment_id,
                              connector.connector_properties('host-a1'))
    cinder.attachments.complete(attachment_id)
    cinder_server.nova.lookup = lambda s, v: attachment_id
    try:
        with pytest.raises(cinder_exc.ClientException) as caught:
            cinder.attachments.delete(attachment_id)
        assert caught.value.code == 409
    finally:
        cinder_server.nova.lookup = lambda s, v: None
    assert (server_id, volume_id, attachment_id) in cinder_server.nova.calls
    cinder.attachments.delete(attachment_id)
    assert _attachment(cinder, attachment_id) is None
    _wait(lambda: cinder.volumes.get(volume_id).status == 'available')
    cinder.volumes.delete(volume_id)
