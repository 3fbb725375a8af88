"""Path confinement for instance storage.

Every path the storage backends create, read or delete is derived from the
configured ``instances_path`` plus an instance uuid or an image id, and is
checked here to lie inside that root before it is used. The checks resolve
every directory component (``realpath``) but never the final component, so a
symlink planted as ``<instances_path>/<uuid>`` is seen as the link itself:
removing it unlinks the link and never touches what it points to.
"""

import contextlib
import json
import os
import shutil
import stat
import tempfile
import uuid

from oslo_log import log as logging
from oslo_utils import uuidutils

from lifecycle import exception

LOG = logging.getLogger(__name__)

DIR_MODE = 0o755
FILE_MODE = 0o644


def canonical_uuid(value: str) -> str:
    """Return ``value`` as a lowercase hyphenated uuid or raise InvalidInput.

    Any spelling oslo accepts (upper case, no hyphens) maps to one canonical
    form, so one instance always maps to one directory.
    """
    if not isinstance(value, str) or not uuidutils.is_uuid_like(value):
        raise exception.InvalidInput(
            reason='%r is not a valid instance uuid' % (value,))
    return str(uuid.UUID(value))


def _resolve_parent(path: str) -> str:
    """Absolute form of ``path`` with every component but the last resolved."""
    path = os.path.abspath(path)
    head, tail = os.path.split(path.rstrip(os.sep) or os.sep)
    if tail in ('', '.', '..'):
        # No final name to keep unresolved: resolve the whole path.
        return os.path.realpath(path)
    return os.path.join(os.path.realpath(head), tail)


def confine(root: str, path: str, allow_root: bool = False) -> str:
    """Return ``path`` resolved (final symlink not followed) inside ``root``.

    A relative ``path`` is taken relative to ``root``. Raises UnsafePath when
    the result is outside ``root`` (or is ``root`` itself, unless
    ``allow_root``).
    """
    real_root = os.path.realpath(root)
    if not os.path.isabs(path):
        path = os.path.join(real_root, path)
    resolved = _resolve_parent(path)
    inside = os.path.commonpath([real_root, resolved]) == real_root
    if not inside or (resolved == real_root and not allow_root):
        LOG.warning('Refusing path %(path)s outside %(root)s',
                    {'path': path, 'root': real_root})
        raise exception.UnsafePath(path=path, root=real_root)
    return resolved


def instance_dir(instances_path: str, instance_uuid: str) -> str:
    """``<instances_path>/<uuid>`` for a validated, canonical instance uuid."""
    return confine(instances_path, canonical_uuid(instance_uuid))


def instance_names(root: str) -> list[str]:
    """Names of the real directories in ``root`` named by a canonical uuid.

    Symlinks are skipped: they are never instance directories of ours.
    """
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    found = []
    for e in entries:
        try:
            canonical = canonical_uuid(e.name)
        except exception.InvalidInput:
            continue
        if canonical == e.name and e.is_dir(follow_symlinks=False):
            found.append(e.name)
    return sorted(found)


def make_service_dir(path: str) -> str:
    """A directory of the services' own (state directory, instance
    storage, local image directory): created if missing and traversable
    by QEMU (libvirt-qemu must reach the disks below it)."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


def ensure_dir(root: str, path: str) -> str:
    """Create ``path`` (inside ``root``) as a real directory with mode 0755.

    An existing symlink or non-directory at ``path`` raises UnsafePath /
    StorageError instead of being used.
    """
    path = confine(root, path, allow_root=True)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise exception.UnsafePath(path=path, root=os.path.realpath(root))
    if not stat.S_ISDIR(st.st_mode):
        raise exception.StorageError(reason='%s exists and is not a directory'
                                     % path)
    if stat.S_IMODE(st.st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def allocated_bytes(path: str) -> int:
    """Bytes allocated on disk by the regular files at or under ``path``
    (symlinks not followed; 0 when it does not exist).

    The one measure of disk usage: ``disks audit``, the storage groups'
    usage and what a removal frees all count with it. Directories are left
    out: their size is file-system metadata (CephFS even reports a
    directory's recursive size), not instance data.
    """
    total = 0
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return 0
    if stat.S_ISREG(info.st_mode):
        return info.st_blocks * 512
    stack = [path] if stat.S_ISDIR(info.st_mode) else []
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
            elif stat.S_ISREG(info.st_mode):
                total += info.st_blocks * 512
    return total


def remove_tree(root: str, path: str) -> int:
    """Remove ``path`` inside ``root``; return the bytes it had allocated.

    A symlink is unlinked (its target untouched); a directory is removed with
    ``shutil.rmtree``, which does not follow symlinks inside it; a missing
    path frees 0 bytes.
    """
    path = confine(root, path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if stat.S_ISLNK(st.st_mode):
        LOG.warning('Removing symlink %(path)s (target %(target)s left alone)',
                    {'path': path, 'target': os.readlink(path)})
        os.unlink(path)
        return 0
    freed = allocated_bytes(path)
    if stat.S_ISDIR(st.st_mode):
        if not shutil.rmtree.avoids_symlink_attacks:
            raise exception.StorageError(
                reason='refusing rmtree without symlink-attack protection')
        shutil.rmtree(path)
    else:
        os.unlink(path)
    LOG.debug('Removed %(path)s, %(freed)d bytes freed',
              {'path': path, 'freed': freed})
    return freed


def fsync_dir(path: str) -> None:
    """Flush a directory's entries (after a rename) to stable storage."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: str) -> None:
    """Unlink ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def write_json_atomic(path: str, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` (0644) via fsync + rename."""
    tmp = path + '.part'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, FILE_MODE)
    os.rename(tmp, path)
    fsync_dir(os.path.dirname(path))


#: The marker a storage group's storage keeps of the path it was first
#: used at (see :func:`check_storage_root`).
MOUNT_MARKER = '.lifecycle-storage.json'


def check_storage_root(root: str, host: str) -> None:
    """Check, before a compute service starts, that ``root`` (its
    ``instances_path``) is usable and mounted where the rest of its group
    mounts it; raise StorageError saying what to fix.

    * The directory must be creatable, writable and chmod-able by this
      process: a share exported with ``root_squash`` to a service running
      as root maps it to ``nobody``, and then nothing below works.
    * qcow2 overlays name their base by absolute path, so every host of a
      storage group must mount the storage at the same path. The first
      compute service to use the storage records its path in
      :data:`MOUNT_MARKER`; a service that finds the marker with another
      path refuses to start.
    """
    root = os.path.abspath(root)
    try:
        os.makedirs(root, DIR_MODE, exist_ok=True)
        if stat.S_IMODE(os.stat(root).st_mode) != DIR_MODE:
            os.chmod(root, DIR_MODE)
        marker = os.path.join(root, MOUNT_MARKER)
        if not os.path.lexists(marker):
            _create_marker(root, marker, host)
        with open(marker) as f:
            recorded = json.load(f)
    except PermissionError as e:
        raise exception.StorageError(reason=(
            'instances_path %s is not writable by this service (%s): a '
            'share exported with root_squash maps root to an unprivileged '
            'user; export it with no_root_squash, or give the directory to '
            'the user the service runs as' % (root, e))) from e
    except (OSError, ValueError) as e:
        raise exception.StorageError(reason='instances_path %s cannot be '
                                     'used: %s' % (root, e)) from e
    first = recorded.get('instances_path') if isinstance(recorded,
                                                         dict) else None
    if first != root:
        raise exception.StorageError(reason=(
            'the storage at instances_path %s was first used at %s (by host '
            '%s, see %s): every host of a storage group must mount its '
            'storage at the same path, because qcow2 overlays name their '
            'base image by absolute path; mount it at %s and set '
            '[DEFAULT] instances_path = %s' % (
                root, first, recorded.get('host') if isinstance(
                    recorded, dict) else None, marker, first, first)))


def _create_marker(root: str, marker: str, host: str) -> None:
    """Write the marker atomically: the first of several hosts starting at
    once wins (link fails when it exists), the others read its marker."""
    fd, tmp = tempfile.mkstemp(prefix='.lifecycle-storage.', dir=root)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump({'instances_path': root, 'host': host}, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        try:
            os.link(tmp, marker)
        except FileExistsError:
            pass
    finally:
        remove_quietly(tmp)
