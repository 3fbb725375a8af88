"""The partial-offload lifecycle on Ceph: a real single-node cluster
(tests/functional/ceph_fixture.py), real libvirtd + QEMU running the guests
from RBD network disks, a real Glance for the full offload.

One all-in-one with a Ceph storage group of two hosts and a file-backed
group of one::

    host-c1, host-c2 -> group "ceph"  (rbd, its own pool)
    host-f1          -> group "files" (qcow2 over _base, as the default)

Each host fits two m1.tiny guests, so booting a third on host-c1 fills it.
"""

import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET

import libvirt
import pytest

from lifecycle import exception
from lifecycle.conf import CONF
from lifecycle.conf import rbd as rbd_conf
from lifecycle.storage import rbd as rbd_storage
from tests.conftest import live_domain
from tests.functional import ceph_fixture
from tests.functional.conftest import disk_of
from tests.functional.conftest import qemu_io

pytestmark = pytest.mark.slow

POOL = 'lifecycle-aio'
TIMEOUT = 120


@pytest.fixture(scope='module')
def pool(ceph_cluster):
    return ceph_cluster.create_pool(POOL)


@pytest.fixture
def aio(make_aio, system_libvirt_uri, glance_server, ceph_cluster, pool):
    if not glance_server.running:
        glance_server.restart()
    # The group's own section, as an operator would write [rbd:ceph].
    rbd_conf.register_section(CONF, 'ceph')
    aio = make_aio(system_libvirt_uri, extra={
        ('aio', 'hosts'): ['host-c1:ceph', 'host-c2:ceph', 'host-f1:files'],
        ('aio', 'host_memory_mb'): 1024,
        ('rbd', 'storage_groups'): ['ceph'],
        ('rbd:ceph', 'ceph_conf'): ceph_cluster.conf,
        ('rbd:ceph', 'pool'): pool,
        ('image', 'source'): 'glance',
        # An image of its own: the session's Glance counts the downloads of
        # the default image for other tests.
        ('image', 'default_image_name'): 'rbd-lifecycle-image',
        ('glance', 'auth_type'): 'none',
        ('glance', 'endpoint_override'): glance_server.endpoint,
        ('glance', 'num_retries'): 0})
    yield aio
    # Other tests of the session take the first image Glance lists as
    # theirs: leave none behind.
    for image in aio.images.list():
        if image['name'].startswith('rbd-'):
            aio.images.delete(image['id'])


@pytest.fixture
def full_offload():
    """Switch ``[shelve] offload_mode`` to full for the rest of a test."""
    yield lambda: CONF.set_override('offload_mode', 'full', group='shelve')
    CONF.clear_override('offload_mode', group='shelve')


def _network_disks(uri, server_id):
    """(source name, [(host, port)]) of each network disk libvirt runs."""
    conn = libvirt.open(uri)
    try:
        tree = ET.fromstring(conn.lookupByUUIDString(server_id).XMLDesc())
    finally:
        conn.close()
    found = []
    for disk in tree.iterfind('devices/disk'):
        assert disk.get('type') == 'network', ET.tostring(disk)
        source = disk.find('source')
        assert source.get('protocol') == 'rbd'
        assert disk.find('auth') is None  # the cluster runs without cephx
        found.append((source.get('name'),
                      [(h.get('name'), int(h.get('port')))
                       for h in source.iterfind('host')]))
    return found


def _qemu_io_rbd(cluster, image, command):
    """qemu-io on the RBD image itself (QEMU's rbd driver, not a file)."""
    return qemu_io(cluster.qemu_filename(POOL, image), command, fmt='raw')


def _rbd_info(cluster, image):
    return json.loads(cluster.rbd('info', '--format', 'json',
                                  '%s/%s' % (POOL, image)))


def _rbd_exists(cluster, image):
    try:
        _rbd_info(cluster, image)
    except ceph_fixture.CephError:
        return False
    return True


def test_rbd_clones_through_shelve_unshelve_full_offload_and_delete(
        aio, client_for, ceph_cluster, system_libvirt_uri, full_offload):
    client = client_for(aio.url)
    # Its own image, not the oldest one the session's Glance lists.
    image = aio.default_image['id']
    first = client.boot('rbd-one', image=image, host='host-c1')
    second = client.boot('rbd-two', image=image, host='host-c1')
    for server_id in (first, second):
        client.wait(server_id, 'ACTIVE', timeout=TIMEOUT)
    disk1, disk2 = first + '_disk', second + '_disk'

    # One base in the pool, imported once; both root disks are its clones.
    bases = [n for n in ceph_cluster.images(POOL) if n.startswith('base_')]
    assert len(bases) == 1, ceph_cluster.images(POOL)
    base = bases[0]
    assert ceph_cluster.children('%s/%s@snap' % (POOL, base)) == \
        sorted([disk1, disk2])
    assert _rbd_info(ceph_cluster, disk1)['parent']['image'] == base
    # QEMU runs them from the pool, reaching the cluster's monitor.
    assert _network_disks(system_libvirt_uri, first) == [
        ('%s/%s' % (POOL, disk1), [('127.0.0.1', ceph_cluster.port)])]
    assert os.path.exists('/run/libvirt/qemu/instance-%s.pid' % first)

    # A pattern in the first clone, written while its guest is off.
    client.action(first, {'os-stop': None})
    client.wait(first, 'SHUTOFF', timeout=TIMEOUT)
    _qemu_io_rbd(ceph_cluster, disk1, 'write -P 0x5c 8M 2M')
    image_id = _rbd_info(ceph_cluster, disk1)['id']

    # Shelve: the guest goes, the clone stays where it was.
    client.action(first, {'shelve': None})
    server = client.wait(first, 'SHELVED_OFFLOADED', timeout=TIMEOUT)
    assert live_domain(system_libvirt_uri, first) is None
    assert server['lifecycle:retained_disk']['storage_group'] == 'ceph'
    sysmeta = aio.db.instance_get(first).system_metadata
    assert sysmeta['shelved_disk'] == disk1
    assert sysmeta['shelved_storage_group'] == 'ceph'
    assert _rbd_info(ceph_cluster, disk1)['id'] == image_id

    # host-c1 is full (second + a filler): unshelve lands on host-c2 and
    # runs the very same clone -- no flatten, no copy.
    filler = client.boot('rbd-filler', image=image, host='host-c1')
    client.wait(filler, 'ACTIVE', timeout=TIMEOUT)
    client.action(first, {'unshelve': None})
    server = client.wait(first, 'ACTIVE', timeout=TIMEOUT)
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-c2'
    assert _network_disks(system_libvirt_uri, first)[0][0] == \
        '%s/%s' % (POOL, disk1)
    info = _rbd_info(ceph_cluster, disk1)
    assert info['id'] == image_id and info['parent']['image'] == base
    _qemu_io_rbd(ceph_cluster, disk1, 'read -P 0x5c 8M 2M')

    # Full offload to Glance: the clone's data (its parent's included) is
    # uploaded and verified, then the clone is removed.
    full_offload()
    client.action(first, {'shelve': None})
    server = client.wait(first, 'SHELVED_OFFLOADED', timeout=TIMEOUT)
    sysmeta = aio.db.instance_get(first).system_metadata
    shelved_image = sysmeta['shelved_image_id']
    assert aio.images.get(shelved_image)['status'] == 'active'
    assert server['lifecycle:retained_disk'] is None
    assert not _rbd_exists(ceph_cluster, disk1)
    assert ceph_cluster.children('%s/%s@snap' % (POOL, base)) == \
        sorted([disk2, filler + '_disk'])

    # ... and comes back in the file-backed group, pattern intact.
    client.action(first, {'unshelve': {'host': 'host-f1'}})
    server = client.wait(first, 'ACTIVE', timeout=TIMEOUT)
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-f1'
    file_disk = disk_of(aio, first, 'files')
    assert live_domain(system_libvirt_uri, first)['disks'] == [file_disk]
    qemu_io(file_disk, 'read -P 0x5c 8M 2M')
    qemu_io(file_disk, 'read -P 0x4c 0 64k')  # the base image's bytes

    # Delete removes the clones; once the last child is gone the base can
    # be cleaned, and not before.
    backend = rbd_storage.RbdBackend(
        aio.storage_path('ceph'), storage_group='ceph')
    for server_id in (second, filler):
        status, _ = client.request('DELETE', '/servers/%s' % server_id)
        assert status == 204
        if server_id == second:
            _wait_deleted(client, server_id)
            assert not _rbd_exists(ceph_cluster, disk2)
            with pytest.raises(exception.BaseInUse):
                backend.remove_base(base)
    _wait_deleted(client, filler)
    assert ceph_cluster.children('%s/%s@snap' % (POOL, base)) == []
    assert backend.remove_unused_bases(dry_run=False) == [base]
    assert ceph_cluster.images(POOL) == []


def _wait_deleted(client, server_id, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        status, _body = client.request('GET', '/servers/%s' % server_id)
        if status == 404:
            return
        assert time.monotonic() < deadline, 'server %s not deleted' % (
            server_id)
        time.sleep(0.1)


def test_qemu_img_sees_the_clone_as_raw_over_rbd(ceph_cluster, pool):
    """The ``rbd:`` file name the backend hands to qemu-img works."""
    backend = rbd_storage.RbdBackend('/var/tmp', settings={
        'ceph_conf': ceph_cluster.conf, 'pool': pool, 'user': None,
        'secret_uuid': None, 'timeout': 60})
    name = 'probe-qemu-img'
    ceph_cluster.rbd('create', '--size', '4M', '%s/%s' % (pool, name))
    try:
        out = subprocess.run(
            ['qemu-img', 'info', '--output=json', '-f', 'raw',
             backend.qemu_filename(name)], capture_output=True, text=True,
            check=True).stdout
        assert json.loads(out)['virtual-size'] == 4 * 1024 * 1024
    finally:
        ceph_cluster.rbd('rm', '--no-progress', '%s/%s' % (pool, name))
