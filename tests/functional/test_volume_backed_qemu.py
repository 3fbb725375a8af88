"""Volume-backed guests on real storage and real QEMU: a Cinder volume of
Cinder's own RBD driver (in the session's Ceph cluster, created by Cinder
from a Glance image that holds a pattern) is the root disk of a guest that
libvirtd (``qemu:///system``) runs as an RBD network disk.

The guest image has no operating system, so the data is checked where the
guest reads it: the RBD image in the pool, through QEMU's own rbd driver
(``qemu-io`` with the ``rbd:`` file name the domain's network disk names),
while the domain runs with that network disk attached.
"""

import json
import subprocess
import xml.etree.ElementTree as ET

import libvirt
import pytest

from lifecycle.compute import volumes
from lifecycle.image import glance as glance_image
from tests.conftest import live_domain
from tests.functional import cinder_fixture
from tests.functional import glance_fixture
from tests.functional.conftest import qemu_io
from tests.functional import volume_aio
from tests.harness import polling

pytestmark = pytest.mark.slow

cinder_server = cinder_fixture.cinder_server
TIMEOUT = 120
MiB = 1024 * 1024


@pytest.fixture
def aio(make_aio, system_libvirt_uri, cinder_server):
    yield volume_aio.start(make_aio, cinder_server,
                           uri=system_libvirt_uri)
    volume_aio.stop(cinder_server)


def _wait(predicate, timeout=TIMEOUT, what=''):
    return polling.wait_until(predicate, timeout, what, interval=0.2)


def _pattern_image(glance_server, tmp_path):
    """A raw Glance image: 1 MiB of 0x5a, then 1 MiB of 0x3c."""
    path = tmp_path / 'pattern.raw'
    path.write_bytes(b'\x5a' * MiB + b'\x3c' * MiB)
    service = glance_image.GlanceImageService(
        glance_fixture.make_conf(glance_server.endpoint))
    return service, service.create('vol-pattern-image', str(path))['id']


def _volume_from_image(cinder, image_id):
    vol = cinder.volumes.create(1, name='from-image', imageRef=image_id,
                                volume_type='rbd')
    vol = _wait(lambda: (lambda v: v if v.status not in (
        'creating', 'downloading') else None)(cinder.volumes.get(vol.id)),
        what='volume from image')
    assert vol.status == 'available', vol.status
    assert vol.bootable == 'true'
    return vol.id


def _rbd_file(cluster, cinder_server, volume_id):
    return cluster.qemu_filename(cinder_fixture.RBD_POOL,
                                 cinder_server.rbd_image(volume_id))


def _network_disk(uri, server_id):
    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByUUIDString(server_id)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        tree = ET.fromstring(dom.XMLDesc())
    finally:
        conn.close()
    disks = tree.findall('devices/disk')
    assert [d.get('type') for d in disks] == ['network']
    source = disks[0].find('source')
    return (source.get('protocol'), source.get('name'),
            [(h.get('name'), int(h.get('port')))
             for h in source.iterfind('host')])


def _snapshots(cluster, cinder_server, volume_id):
    return json.loads(cluster.rbd(
        'snap', 'ls', '--format', 'json', '%s/%s' % (
            cinder_fixture.RBD_POOL, cinder_server.rbd_image(volume_id))))


def test_boot_shelve_unshelve_delete_on_an_rbd_volume(
        aio, client_for, cinder_server, ceph_cluster, glance_server,
        system_libvirt_uri, tmp_path):
    client = client_for(aio.url)
    cinder = cinder_server.client()
    images, image_id = _pattern_image(glance_server, tmp_path)
    try:
        volume_id = _volume_from_image(cinder, image_id)
    finally:
        images.delete(image_id)
    images_before = {i['id'] for i in images.list()}
    rbd_name = '%s/%s' % (cinder_fixture.RBD_POOL,
                          cinder_server.rbd_image(volume_id))
    rbd_file = _rbd_file(ceph_cluster, cinder_server, volume_id)

    status, body = client.request('POST', '/servers', {'server': {
        'name': 'rbd-volume-vm', 'flavorRef': '1', 'networks': 'none',
        'host': 'host-a1', 'block_device_mapping_v2': [{
            'source_type': 'volume', 'destination_type': 'volume',
            'boot_index': 0, 'uuid': volume_id,
            'delete_on_termination': True}]}})
    assert status == 202, body
    server_id = body['server']['id']
    client.wait(server_id, 'ACTIVE', timeout=TIMEOUT)

    # QEMU runs it from the pool: a network disk, no host block device.
    assert _network_disk(system_libvirt_uri, server_id) == (
        'rbd', rbd_name, [('127.0.0.1', ceph_cluster.port)])
    # The image's data, read through the path the guest uses.
    qemu_io(rbd_file, 'read -P 0x5a 0 1M', fmt='raw')
    qemu_io(rbd_file, 'read -P 0x3c 1M 1M', fmt='raw')

    # Shelve (offloaded at once): the guest goes, the volume stays.
    assert client.action(server_id, {'shelve': None})[0] == 202
    client.wait(server_id, 'SHELVED_OFFLOADED', timeout=TIMEOUT)
    assert live_domain(system_libvirt_uri, server_id) is None
    sysmeta = aio.db.instance_get(server_id).system_metadata
    reserved = sysmeta[volumes.ROOT_ATTACHMENT_ID]
    assert cinder_server.attachment_row(reserved) == {
        'attach_status': 'reserved', 'attached_host': None,
        'connector': None, 'deleted': False}
    assert cinder.volumes.get(volume_id).status == 'reserved'
    # No image and no snapshot of any kind.
    assert {i['id'] for i in images.list()} == images_before
    assert _snapshots(ceph_cluster, cinder_server, volume_id) == []
    assert cinder.volume_snapshots.list(
        search_opts={'volume_id': volume_id}) == []
    assert cinder_server.rbd_image(volume_id) in cinder_server.pool_images()

    # Data written while shelved (nobody holds the image now).
    qemu_io(rbd_file, 'write -P 0xa5 4M 1M', fmt='raw')

    # Unshelve on another host (another storage group even): the same
    # volume runs, everything in it intact.
    status, body = client.action(server_id,
                                 {'unshelve': {'host': 'host-b1'}})
    assert status == 202, body
    server = client.wait(server_id, 'ACTIVE', timeout=TIMEOUT)
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-b1'
    assert _network_disk(system_libvirt_uri, server_id) == (
        'rbd', rbd_name, [('127.0.0.1', ceph_cluster.port)])
    row = cinder_server.attachment_row(
        aio.db.instance_get(server_id).system_metadata[
            volumes.ROOT_ATTACHMENT_ID])
    assert (row['attach_status'], row['attached_host']) == ('attached',
                                                            'host-b1')
    for command in ('read -P 0x5a 0 1M', 'read -P 0x3c 1M 1M',
                    'read -P 0xa5 4M 1M'):
        qemu_io(rbd_file, command, fmt='raw')

    # Delete with delete_on_termination: the volume leaves the pool.
    assert client.request('DELETE', '/servers/%s' % server_id)[0] == 204
    _wait(lambda: client.request('GET', '/servers/%s' % server_id)[0]
          == 404, what='delete')
    assert live_domain(system_libvirt_uri, server_id) is None
    _wait(lambda: cinder_server.rbd_image(volume_id)
          not in cinder_server.pool_images(), what='volume out of the pool')
    with pytest.raises(subprocess.CalledProcessError):
        qemu_io(rbd_file, 'read 0 512', fmt='raw')
