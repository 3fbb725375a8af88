"""Storage backends against real qemu-img / qemu-io (no mocks)."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from lifecycle import exception
from lifecycle.image import local
from lifecycle.storage import base as storage_base
from lifecycle.storage import qemu_img
from lifecycle.storage import load_backend

IMAGE_ID = '0b6ad8c6-7d5a-4f0e-9a39-5a1d0c2f6a11'
MiB = 1 << 20


@pytest.fixture
def instances_path(qemu_dir):
    path = os.path.join(qemu_dir, 'instances')
    os.mkdir(path)
    return path


@pytest.fixture
def source_image(qemu_dir):
    path = os.path.join(qemu_dir, 'src.qcow2')
    local.make_blank_image(path, 64)
    return path


class CountingFetch:
    """Copies the source image; counts calls; slow enough to overlap."""

    def __init__(self, src, delay=0.3):
        self.src, self.delay, self.calls = src, delay, 0
        self._lock = threading.Lock()

    def __call__(self, dest):
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        shutil.copyfile(self.src, dest)


def qemu_io(disk, fmt, command):
    return subprocess.run(['qemu-io', '-f', fmt, '-c', command, disk],
                          capture_output=True, text=True)


def ensure_base_on_two_hosts(instances_path, backend_name, fetch):
    hosts = [load_backend(backend_name, instances_path) for _ in range(2)]
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run(backend):
        barrier.wait()
        try:
            results.append(backend.ensure_base(IMAGE_ID, fetch))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(h,)) for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(results) == 2 and results[0] == results[1]
    return hosts, results[0]


def assert_base_clean(backend, base):
    assert os.path.isfile(base)
    assert qemu_img.info(base)['format'] == 'raw'
    assert oct(os.stat(base).st_mode & 0o777) == oct(0o644)
    leftovers = [n for n in os.listdir(backend.base_dir) if '.part' in n]
    assert leftovers == []


def test_load_backend(instances_path):
    assert load_backend('qcow2', instances_path).name == 'qcow2'
    assert load_backend('flat', instances_path).disk_format == 'raw'
    with pytest.raises(exception.InvalidConfiguration):
        load_backend('nope', instances_path)


def test_qcow2_lifecycle(instances_path, source_image, new_uuid):
    fetch = CountingFetch(source_image)
    (host_a, host_b), base = ensure_base_on_two_hosts(
        instances_path, 'qcow2', fetch)
    assert fetch.calls == 1
    assert base == host_a.base_path(IMAGE_ID)
    assert base.startswith(os.path.join(instances_path, '_base') + os.sep)
    assert_base_clean(host_a, base)
    # Idempotent: no second fetch.
    assert host_b.ensure_base(IMAGE_ID, fetch) == base
    assert fetch.calls == 1

    disk = host_a.create_root_disk(new_uuid, IMAGE_ID, 1)
    assert disk == storage_base.DiskInfo(
        path=os.path.join(instances_path, new_uuid, 'disk'), format='qcow2')
    info = qemu_img.info(disk.path, 'qcow2')
    assert info['backing-filename'] == base
    assert info['backing-filename-format'] == 'raw'
    assert info['virtual-size'] == 1024 * MiB
    assert oct(os.stat(disk.path).st_mode & 0o777) == oct(0o644)
    assert oct(os.stat(os.path.dirname(disk.path)).st_mode & 0o777) == \
        oct(0o755)

    # Guest data lands in the overlay; the base's header reads through.
    res = qemu_io(disk.path, 'qcow2', 'write -P 0xab 1M 1M')
    assert res.returncode == 0, res.stderr
    res = qemu_io(disk.path, 'qcow2', 'read -P 0xab 1M 1M')
    assert res.returncode == 0 and 'verification failed' not in res.stdout
    res = qemu_io(disk.path, 'qcow2', 'read -P 0x4c 0 64k')
    assert res.returncode == 0 and 'verification failed' not in res.stdout
    assert not qemu_img.verify_pattern(base, 'raw', 0xab, MiB, MiB)

    # The other host sees the same disk; creating again is a no-op.
    assert host_b.exists(new_uuid)
    assert host_b.disk_info(new_uuid) == disk
    assert host_b.create_root_disk(new_uuid, IMAGE_ID, 1) == disk
    assert qemu_img.verify_pattern(disk.path, 'qcow2', 0xab, MiB, MiB)
    assert new_uuid in host_b.instance_uuids()

    assert host_b.referenced_bases() == {base}
    assert host_b.remove_unused_bases(dry_run=True) == []
    assert host_b.remove_unused_bases(dry_run=False) == []
    assert os.path.isfile(base)

    allocated = host_a.allocated_bytes(new_uuid)
    assert allocated >= MiB
    assert host_b.delete(new_uuid) == allocated
    assert not os.path.lexists(os.path.dirname(disk.path))
    assert os.path.isfile(base)
    assert host_b.delete(new_uuid) == 0
    with pytest.raises(exception.RetainedDiskNotFound):
        host_a.disk_info(new_uuid)

    assert host_a.referenced_bases() == set()
    assert host_a.remove_unused_bases() == [base]  # dry run
    assert os.path.isfile(base)
    assert host_a.remove_unused_bases(dry_run=False, min_age_seconds=3600) \
        == []
    assert host_a.remove_unused_bases(dry_run=False) == [base]
    assert not os.path.exists(base)


def test_failed_fetch_leaves_nothing(instances_path, source_image,
                                     new_uuid):
    backend = load_backend('qcow2', instances_path)

    def broken(dest):
        with open(dest, 'wb') as f:
            f.write(b'\x01' * (2 * MiB))
        raise OSError('connection reset by peer')

    with pytest.raises(exception.ImageFetchError):
        backend.ensure_base(IMAGE_ID, broken)
    assert not os.path.exists(backend.base_path(IMAGE_ID))
    assert [n for n in os.listdir(backend.base_dir) if n != '.locks'] == []
    with pytest.raises(exception.StorageError):
        backend.create_root_disk(new_uuid, IMAGE_ID, 1)
    assert not backend.exists(new_uuid)

    fetch = CountingFetch(source_image, delay=0)
    base = backend.ensure_base(IMAGE_ID, fetch)
    assert fetch.calls == 1
    assert_base_clean(backend, base)


def test_stale_partial_from_crash_is_cleaned(instances_path, source_image):
    backend = load_backend('qcow2', instances_path)
    name = os.path.basename(backend.base_path(IMAGE_ID))
    os.makedirs(backend.base_dir)
    stale = os.path.join(backend.base_dir, '.%s.abc123.part' % name)
    with open(stale, 'wb') as f:
        f.write(b'half')
    base = backend.ensure_base(IMAGE_ID, CountingFetch(source_image, 0))
    assert not os.path.exists(stale)
    assert_base_clean(backend, base)


def test_unsafe_image_is_refused(instances_path, source_image, qemu_dir):
    backend = load_backend('qcow2', instances_path)
    evil = os.path.join(qemu_dir, 'evil.qcow2')
    qemu_img.create_overlay(source_image, evil, 64 * MiB, base_format='qcow2')
    with pytest.raises(exception.StorageError):
        backend.ensure_base(IMAGE_ID, lambda dest: shutil.copyfile(evil,
                                                                   dest))
    with pytest.raises(exception.StorageError):
        backend.ensure_base(IMAGE_ID, CountingFetch(source_image, 0),
                            disk_format='raw')
    assert backend.list_bases() == []


def test_flat_lifecycle(instances_path, source_image, new_uuid):
    fetch = CountingFetch(source_image)
    (host_a, host_b), base = ensure_base_on_two_hosts(
        instances_path, 'flat', fetch)
    assert fetch.calls == 1
    assert_base_clean(host_a, base)

    disk = host_a.create_root_disk(new_uuid, IMAGE_ID, 1)
    assert disk.format == 'raw'
    info = qemu_img.info(disk.path, 'raw')
    assert info['virtual-size'] == 1024 * MiB
    assert 'backing-filename' not in info
    # Sparse: far less allocated than the virtual size.
    assert host_a.allocated_bytes(new_uuid) < 64 * MiB
    with open(os.path.join(os.path.dirname(disk.path), 'disk.info')) as f:
        assert json.load(f) == {'disk': 'raw'}

    res = qemu_io(disk.path, 'raw', 'write -P 0xab 1M 1M')
    assert res.returncode == 0, res.stderr
    res = qemu_io(disk.path, 'raw', 'read -P 0xab 1M 1M')
    assert res.returncode == 0 and 'verification failed' not in res.stdout
    res = qemu_io(disk.path, 'raw', 'read -P 0x4c 0 64k')
    assert res.returncode == 0 and 'verification failed' not in res.stdout

    assert host_b.disk_info(new_uuid) == disk
    assert host_b.create_root_disk(new_uuid, IMAGE_ID, 1) == disk
    assert host_b.referenced_bases() == set()

    # A flat disk does not need its base: removing it keeps the disk whole.
    assert host_b.remove_unused_bases(dry_run=False) == [base]
    assert qemu_img.verify_pattern(disk.path, 'raw', 0x4c, 0, 64 * 1024)
    assert qemu_img.verify_pattern(disk.path, 'raw', 0xab, MiB, MiB)

    freed = host_b.delete(new_uuid)
    assert freed >= MiB
    assert not os.path.lexists(os.path.dirname(disk.path))
    assert host_b.delete(new_uuid) == 0


def test_disk_keeps_base_size_when_flavor_smaller(instances_path,
                                                  source_image, new_uuid):
    backend = load_backend('qcow2', instances_path)
    backend.ensure_base(IMAGE_ID, CountingFetch(source_image, 0))
    disk = backend.create_root_disk(new_uuid, IMAGE_ID, 0)
    assert qemu_img.virtual_size(disk.path, 'qcow2') == 64 * MiB


def test_existing_invalid_disk_is_not_overwritten(instances_path,
                                                  source_image, new_uuid):
    backend = load_backend('qcow2', instances_path)
    backend.ensure_base(IMAGE_ID, CountingFetch(source_image, 0))
    os.mkdir(os.path.join(instances_path, new_uuid))
    junk = os.path.join(instances_path, new_uuid, 'disk')
    with open(junk, 'wb') as f:
        f.write(b'user data, not qcow2')
    with pytest.raises(exception.StorageError):
        backend.create_root_disk(new_uuid, IMAGE_ID, 1)
    with open(junk, 'rb') as f:
        assert f.read() == b'user data, not qcow2'


_PROCESS_SCRIPT = '''
import shutil, sys, time
from lifecycle.storage import load_backend
instances_path, src, log = sys.argv[1:4]
def fetch(dest):
    with open(log, 'a') as f:
        f.write('fetch\\n')
    time.sleep(0.5)
    shutil.copyfile(src, dest)
print(load_backend('qcow2', instances_path).ensure_base(%r, fetch))
''' % IMAGE_ID


def test_ensure_base_across_processes(instances_path, source_image,
                                      qemu_dir):
    log = os.path.join(qemu_dir, 'fetches.log')
    cwd = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    procs = [subprocess.Popen([sys.executable, '-c', _PROCESS_SCRIPT,
                               instances_path, source_image, log],
                              cwd=cwd, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert len(set(outputs)) == 1
    with open(log) as f:
        assert f.read().count('fetch') == 1
