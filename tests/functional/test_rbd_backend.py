"""The ``rbd`` storage backend against a real single-node Ceph cluster:
base import once, clones, children listing, protection, and refusal to
remove a base that still has clones."""

import json
import os
import threading
import uuid

import pytest

from lifecycle import exception
from lifecycle.storage import qemu_img
from lifecycle.storage import rbd as rbd_storage
from lifecycle.storage import rbd_client

POOL = 'lifecycle-backend'
MiB = 1024 * 1024


@pytest.fixture(scope='module')
def pool(ceph_cluster):
    return ceph_cluster.create_pool(POOL)


@pytest.fixture
def backend(ceph_cluster, pool, tmp_path):
    return rbd_storage.RbdBackend(str(tmp_path), settings={
        'ceph_conf': ceph_cluster.conf, 'pool': pool, 'user': None,
        'secret_uuid': None, 'timeout': 60})


@pytest.fixture
def image_id():
    return 'image-%s' % uuid.uuid4()


def _fetcher(calls):
    def fetch(path):
        calls.append(path)
        qemu_img.create(path, 8 * MiB, 'raw')
        qemu_img.write_pattern(path, 'raw', 0x4c, 0, 64 * 1024)
    return fetch


def _snaps(cluster, image):
    return json.loads(cluster.rbd('snap', 'ls', '--format', 'json',
                                  '%s/%s' % (POOL, image)))


def test_base_imported_once_with_a_protected_snapshot(backend, ceph_cluster,
                                                      image_id):
    calls = []
    name = backend.ensure_base(image_id, _fetcher(calls))
    assert backend.ensure_base(image_id, _fetcher(calls)) == name
    assert len(calls) == 1
    assert name == backend.base_name(image_id)
    assert name in ceph_cluster.images(POOL)
    snaps = _snaps(ceph_cluster, name)
    assert [(s['name'], s['protected']) for s in snaps] == [('snap', 'true')]
    # The local scratch copy is gone, and no temporary image is left.
    assert os.listdir(backend.base_dir) == ['.locks']
    assert backend.partial_bases() == []
    backend.remove_base(name)
    assert name not in ceph_cluster.images(POOL)


def test_concurrent_imports_leave_one_base(backend, ceph_cluster, image_id,
                                           tmp_path):
    """Two hosts (separate scratch directories, so separate locks) import
    the same image at once: the atomic rename lets one win."""
    other = rbd_storage.RbdBackend(str(tmp_path / 'other-host'), settings={
        'ceph_conf': ceph_cluster.conf, 'pool': POOL, 'user': None,
        'secret_uuid': None, 'timeout': 60})
    results, errors = [], []

    def run(b):
        try:
            results.append(b.ensure_base(image_id, _fetcher([])))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(b,))
               for b in (backend, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    name = backend.base_name(image_id)
    assert results == [name, name]
    assert [n for n in ceph_cluster.images(POOL)
            if n.startswith(name)] == [name]
    backend.remove_base(name)


def test_clones_children_and_refused_base_removal(backend, ceph_cluster,
                                                  image_id):
    base_name = backend.ensure_base(image_id, _fetcher([]))
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    disk = backend.create_root_disk(first, image_id, 1)
    backend.create_root_disk(second, image_id, 0)
    # Idempotent: a second call returns the same clone.
    assert backend.create_root_disk(first, image_id, 1) == disk

    assert disk.format == 'raw'
    assert str(disk.path) == 'rbd:%s/%s_disk' % (POOL, first)
    assert disk.path.hosts == (('127.0.0.1', ceph_cluster.port),)
    assert os.path.relpath(disk.path, backend.instances_path) == \
        first + '_disk'
    assert backend.children(base_name) == sorted([first + '_disk',
                                                  second + '_disk'])
    assert ceph_cluster.children('%s/%s@snap' % (POOL, base_name)) == \
        sorted([first + '_disk', second + '_disk'])
    info = json.loads(ceph_cluster.rbd('info', '--format', 'json',
                                       '%s/%s_disk' % (POOL, first)))
    assert info['parent']['image'] == base_name
    assert info['size'] == 1024 * MiB  # grown to the flavor, thin
    assert backend.allocated_bytes(first) == 0  # nothing written yet
    assert backend.referenced_bases() >= {base_name}
    assert set(backend.instance_uuids()) >= {first, second}

    # The clone reads the base's bytes and keeps its own writes.
    filename = backend.qemu_filename(first + '_disk')
    assert qemu_img.verify_pattern(filename, 'raw', 0x4c, 0, 64 * 1024)
    qemu_img.write_pattern(filename, 'raw', 0x77, 2 * MiB, MiB)
    assert qemu_img.verify_pattern(filename, 'raw', 0x77, 2 * MiB, MiB)
    assert backend.allocated_bytes(first) > 0

    # A base with clones is never removed: ours refuses, and so does Ceph.
    with pytest.raises(exception.BaseInUse):
        backend.remove_base(base_name)
    assert base_name not in backend.remove_unused_bases(dry_run=True)
    with pytest.raises(exception.RbdCommandError) as caught:
        backend.client.snap_unprotect(base_name, rbd_storage.SNAP)
    assert caught.value.errno == rbd_client.EBUSY
    assert _snaps(ceph_cluster, base_name)[0]['protected'] == 'true'

    # Deleting one clone leaves the other and the base.
    assert backend.delete(first) > 0
    assert not backend.exists(first)
    with pytest.raises(exception.RetainedDiskNotFound):
        backend.disk_info(first)
    assert backend.children(base_name) == [second + '_disk']
    with pytest.raises(exception.BaseInUse):
        backend.remove_base(base_name)

    # The last one gone, the snapshot is unprotected and the base removed.
    backend.delete(second)
    assert backend.children(base_name) == []
    assert base_name in backend.remove_unused_bases(dry_run=True)
    assert base_name in backend.remove_unused_bases(dry_run=False)
    assert base_name not in ceph_cluster.images(POOL)


def test_protect_unprotect_round_trip(backend, ceph_cluster):
    name = 'probe-%s' % uuid.uuid4().hex[:8]
    ceph_cluster.rbd('create', '--size', '4M', '%s/%s' % (POOL, name))
    client = backend.client
    client.snap_create(name, 's1')
    client.snap_protect(name, 's1')
    assert client.snapshots(name)[0]['protected'] is True
    # A protected snapshot cannot be removed ...
    with pytest.raises(exception.RbdCommandError) as caught:
        client.snap_remove(name, 's1')
    assert caught.value.errno == rbd_client.EBUSY
    # ... until it is unprotected.
    client.snap_unprotect(name, 's1')
    assert client.snapshots(name)[0]['protected'] is False
    client.snap_remove(name, 's1')
    client.remove(name)
    assert name not in ceph_cluster.images(POOL)


def test_missing_base_and_unsafe_names_are_refused(backend, image_id):
    with pytest.raises(exception.StorageError):
        backend.create_root_disk(str(uuid.uuid4()), image_id, 1)
    with pytest.raises(exception.InvalidInput):
        backend.disk_name('../../etc/passwd')
    with pytest.raises(exception.InvalidInput):
        backend.client.spec('x; rm -rf /')


def test_export_flattens_the_clone(backend, image_id, tmp_path):
    backend.ensure_base(image_id, _fetcher([]))
    server = str(uuid.uuid4())
    backend.create_root_disk(server, image_id, 0)
    qemu_img.write_pattern(backend.qemu_filename(server + '_disk'), 'raw',
                         0x21, MiB, MiB)
    dest = str(tmp_path / 'export.qcow2')
    backend.export_disk(server, dest, 'qcow2')
    assert qemu_img.info(dest, 'qcow2').get('backing-filename') is None
    assert qemu_img.verify_pattern(dest, 'qcow2', 0x4c, 0, 64 * 1024)
    assert qemu_img.verify_pattern(dest, 'qcow2', 0x21, MiB, MiB)
    backend.delete(server)
    backend.remove_base(backend.base_name(image_id))
