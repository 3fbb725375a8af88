"""The local image source against real files and qemu-img."""

import hashlib
import json
import os
import uuid

import pytest

from lifecycle import exception
from lifecycle.image import local
from lifecycle.storage import qemu_img

MiB = 1 << 20


@pytest.fixture
def service(qemu_dir):
    return local.LocalImageService(os.path.join(qemu_dir, 'images'))


@pytest.fixture
def blank(qemu_dir):
    path = os.path.join(qemu_dir, 'blank.qcow2')
    local.make_blank_image(path, 16)
    return path


def _digest(path, algo):
    with open(path, 'rb') as f:
        return hashlib.new(algo, f.read()).hexdigest()


def test_make_blank_image(blank):
    info = qemu_img.info(blank)
    assert info['format'] == 'qcow2'
    assert info['virtual-size'] == 16 * MiB
    assert qemu_img.verify_pattern(blank, 'qcow2', 0x4c, 0, 64 * 1024)
    assert not qemu_img.verify_pattern(blank, 'qcow2', 0x4c, 64 * 1024, 4096)


def test_create_list_get_download(service, blank, qemu_dir):
    meta = service.create('lifecycle-blank', blank)
    assert uuid.UUID(meta['id'])
    assert meta['name'] == 'lifecycle-blank'
    assert meta['status'] == 'active'
    assert meta['disk_format'] == 'qcow2'
    assert meta['container_format'] == 'bare'
    assert meta['size'] == os.path.getsize(blank)
    assert meta['virtual_size'] == 16 * MiB
    assert meta['checksum'] == _digest(blank, 'md5')
    assert meta['os_hash_algo'] == 'sha512'
    assert meta['os_hash_value'] == _digest(blank, 'sha512')
    assert meta['min_disk'] == 0 and meta['min_ram'] == 0
    assert meta['created_at'].endswith('Z')

    data = os.path.join(service.directory, meta['id'])
    with open(data + '.json') as f:
        assert json.load(f) == meta
    assert oct(os.stat(data).st_mode & 0o777) == oct(0o644)
    assert [n for n in os.listdir(service.directory) if '.part' in n] == []

    assert service.list() == [meta]
    assert service.get(meta['id']) == meta
    assert service.get(meta['id'].upper()) == meta
    assert service.find_by_name('lifecycle-blank') == meta
    assert service.find_by_name('other') is None

    dest = os.path.join(qemu_dir, 'copy')
    service.download(meta['id'], dest)
    assert _digest(dest, 'sha512') == meta['os_hash_value']
    assert qemu_img.verify_pattern(dest, 'qcow2', 0x4c, 0, 64 * 1024)


def test_raw_image_and_declared_format(service, qemu_dir):
    raw = os.path.join(qemu_dir, 'disk.raw')
    with open(raw, 'wb') as f:
        f.write(b'\x4c' * 4096)
        f.truncate(8 * MiB)  # mostly zeros: the copy stays sparse
    meta = service.create('raw-one', raw, disk_format='raw')
    assert meta['disk_format'] == 'raw'
    assert meta['size'] == 8 * MiB
    dest = os.path.join(qemu_dir, 'raw-copy')
    service.download(meta['id'], dest)
    assert os.path.getsize(dest) == 8 * MiB
    assert os.stat(dest).st_blocks * 512 < 8 * MiB
    assert _digest(dest, 'md5') == meta['checksum']
    with pytest.raises(exception.StorageError):
        service.create('liar', raw, disk_format='qcow2')
    assert [m['name'] for m in service.list()] == ['raw-one']


def test_tampered_image_is_refused(service, blank, qemu_dir):
    meta = service.create('blank', blank)
    data = os.path.join(service.directory, meta['id'])
    with open(data, 'r+b') as f:
        f.seek(70 * 1024)
        f.write(b'tampered')
    dest = os.path.join(qemu_dir, 'dest')
    with pytest.raises(exception.ImageFetchError):
        service.download(meta['id'], dest)
    assert not os.path.exists(dest)


def test_truncated_image_is_refused(service, blank, qemu_dir):
    meta = service.create('blank', blank)
    os.truncate(os.path.join(service.directory, meta['id']), 1000)
    dest = os.path.join(qemu_dir, 'dest')
    with pytest.raises(exception.ImageFetchError):
        service.download(meta['id'], dest)
    assert not os.path.exists(dest)


def test_missing_data_file(service, blank, qemu_dir):
    meta = service.create('blank', blank)
    os.unlink(os.path.join(service.directory, meta['id']))
    dest = os.path.join(qemu_dir, 'dest')
    with pytest.raises(exception.ImageFetchError):
        service.download(meta['id'], dest)
    assert not os.path.exists(dest)


@pytest.mark.parametrize('image_id', [
    str(uuid.uuid4()), 'not-a-uuid', '../etc/passwd', '', '/etc/passwd',
])
def test_unknown_image(service, image_id, qemu_dir):
    with pytest.raises(exception.ImageNotFound):
        service.get(image_id)
    with pytest.raises(exception.ImageNotFound):
        service.download(image_id, os.path.join(qemu_dir, 'dest'))
    assert service.delete(image_id) is False
    assert not os.path.exists(os.path.join(qemu_dir, 'dest'))


def test_delete(service, blank):
    meta = service.create('blank', blank)
    assert service.delete(meta['id']) is True
    assert service.delete(meta['id']) is False
    assert service.list() == []
    assert os.listdir(service.directory) == []
    with pytest.raises(exception.ImageNotFound):
        service.get(meta['id'])


def test_unsafe_source_refused(service, blank, qemu_dir):
    overlay = os.path.join(qemu_dir, 'overlay.qcow2')
    qemu_img.create_overlay(blank, overlay, 16 * MiB, base_format='qcow2')
    with pytest.raises(exception.StorageError):
        service.create('overlay', overlay)
    assert os.listdir(service.directory) == []


def test_find_by_name_with_duplicates(service, blank):
    ids = {service.create('dup', blank)['id'] for _ in range(2)}
    assert len(ids) == 2
    assert service.find_by_name('dup')['id'] in ids


def test_ensure_base_from_local_images(service, blank, qemu_dir):
    from lifecycle.storage import load_backend
    meta = service.create('blank', blank)
    backend = load_backend('qcow2', os.path.join(qemu_dir, 'instances'))
    base = backend.ensure_base(
        meta['id'], lambda tmp: service.download(meta['id'], tmp),
        disk_format=meta['disk_format'])
    assert qemu_img.info(base)['format'] == 'raw'
    assert qemu_img.verify_pattern(base, 'raw', 0x4c, 0, 64 * 1024)

    bad = service.create('bad', blank)
    with open(os.path.join(service.directory, bad['id']), 'r+b') as f:
        f.seek(100 * 1024)
        f.write(b'x')
    with pytest.raises(exception.ImageFetchError):
        backend.ensure_base(bad['id'],
                            lambda tmp: service.download(bad['id'], tmp))
    assert backend.list_bases() == [base]
    assert [n for n in os.listdir(backend.base_dir) if '.part' in n] == []


def test_upload_keeps_properties(service, blank):
    meta = service.upload('vm-shelved', blank, 'qcow2',
                          {'instance_uuid': 'abc'})
    assert service.get(meta['id'])['properties'] == {'instance_uuid': 'abc'}
