"""Path confinement of instance storage (no QEMU needed)."""

import os

import pytest

from lifecycle import exception
from lifecycle.storage import flat
from lifecycle.storage import paths

UUID = '6f1c3d52-7a2e-4c1b-9c56-0d9a5f3e2b71'


@pytest.fixture
def root(tmp_path):
    r = tmp_path / 'instances'
    r.mkdir()
    return str(r)


@pytest.mark.parametrize('bad', [
    '', 'not-a-uuid', '../' + UUID, UUID + '/..', '/' + UUID, '..', '.',
    UUID + '/../../etc', UUID + '0', None, 42,
])
def test_instance_dir_rejects_bad_uuid(root, bad):
    with pytest.raises(exception.InvalidInput):
        paths.instance_dir(root, bad)


def test_instance_dir_canonicalises(root):
    expected = os.path.join(os.path.realpath(root), UUID)
    assert paths.instance_dir(root, UUID) == expected
    assert paths.instance_dir(root, UUID.upper()) == expected
    assert paths.instance_dir(root, UUID.replace('-', '')) == expected
    assert paths.instance_dir(root, 'urn:uuid:' + UUID) == expected


@pytest.mark.parametrize('path', [
    '/etc/passwd', '/', '..', '../x', 'a/../../x', '_base/../../x',
])
def test_confine_rejects_outside(root, path):
    with pytest.raises(exception.UnsafePath):
        paths.confine(root, path)


def test_confine_root_itself(root):
    with pytest.raises(exception.UnsafePath):
        paths.confine(root, root)
    assert paths.confine(root, root, allow_root=True) == os.path.realpath(root)


def test_confine_accepts_inside(root):
    real = os.path.realpath(root)
    assert paths.confine(root, 'a/b') == os.path.join(real, 'a', 'b')
    assert paths.confine(root, os.path.join(root, 'a/../c')) == \
        os.path.join(real, 'c')


def test_confine_resolves_intermediate_symlink(root, tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    os.symlink(str(outside), os.path.join(root, 'link'))
    # The final component is not followed: the link itself is inside.
    assert paths.confine(root, 'link') == os.path.join(
        os.path.realpath(root), 'link')
    # Anything through it is outside.
    with pytest.raises(exception.UnsafePath):
        paths.confine(root, 'link/disk')


def test_confine_symlinked_root(tmp_path, root):
    alias = str(tmp_path / 'alias')
    os.symlink(root, alias)
    assert paths.confine(alias, 'x') == os.path.join(
        os.path.realpath(root), 'x')


def _plant(root, tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'precious').write_bytes(b'keep me')
    (outside / 'disk').write_bytes(b'not yours')
    os.symlink(str(outside), os.path.join(root, UUID))
    return outside


def test_delete_planted_symlink_removes_link_only(root, tmp_path):
    outside = _plant(root, tmp_path)
    backend = flat.FlatBackend(root)
    assert backend.delete(UUID) == 0
    assert not os.path.lexists(os.path.join(root, UUID))
    assert (outside / 'precious').read_bytes() == b'keep me'
    assert (outside / 'disk').read_bytes() == b'not yours'


def test_planted_symlink_is_never_used(root, tmp_path):
    _plant(root, tmp_path)
    backend = flat.FlatBackend(root)
    with pytest.raises(exception.UnsafePath):
        backend.disk_info(UUID)
    with pytest.raises(exception.UnsafePath):
        backend.exists(UUID)
    with pytest.raises(exception.UnsafePath):
        backend.create_root_disk(UUID, 'image', 1)
    assert backend.instance_uuids() == []


def test_symlink_inside_instance_dir_not_followed(root, tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'precious').write_bytes(b'keep me')
    inst = os.path.join(root, UUID)
    os.mkdir(inst)
    with open(os.path.join(inst, 'disk'), 'wb') as f:
        f.write(b'x' * 8192)
    os.symlink(str(outside), os.path.join(inst, 'escape'))
    backend = flat.FlatBackend(root)
    assert backend.delete(UUID) > 0
    assert not os.path.lexists(inst)
    assert (outside / 'precious').read_bytes() == b'keep me'


def test_delete_absent_and_bad_uuid(root):
    backend = flat.FlatBackend(root)
    assert backend.delete(UUID) == 0
    with pytest.raises(exception.InvalidInput):
        backend.delete('../../etc')


def test_disk_info_missing(root):
    backend = flat.FlatBackend(root)
    with pytest.raises(exception.RetainedDiskNotFound):
        backend.disk_info(UUID)
    assert not backend.exists(UUID)


def test_remove_tree_refuses_root_and_outside(root):
    with pytest.raises(exception.UnsafePath):
        paths.remove_tree(root, root)
    with pytest.raises(exception.UnsafePath):
        paths.remove_tree(root, '/tmp')
    assert os.path.isdir(root)


def test_ensure_dir_refuses_symlink(root, tmp_path):
    os.symlink(str(tmp_path), os.path.join(root, 'lnk'))
    with pytest.raises(exception.UnsafePath):
        paths.ensure_dir(root, os.path.join(root, 'lnk'))
    made = paths.ensure_dir(root, os.path.join(root, 'new'))
    assert oct(os.stat(made).st_mode & 0o777) == oct(0o755)
