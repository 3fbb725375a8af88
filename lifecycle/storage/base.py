"""The storage backend interface and what the file backends share.

Layout (like Nova's ``instances_path``), shared by every host of a storage
group::

    <instances_path>/<instance uuid>/disk       root disk
    <instances_path>/<instance uuid>/disk.info  {"disk": "<format>"}
    <instances_path>/_base/<sha1(image id)>     raw base image
    <instances_path>/_base/.locks/              interprocess lock files

``disk.info`` records the format the disk was created with, as Nova does, so
the format of a disk is never probed from content a guest can write.
"""

import abc
import dataclasses
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterable

from oslo_concurrency import lockutils
from oslo_log import log as logging

from lifecycle import exception
from lifecycle.storage import qemu_img
from lifecycle.storage import paths
from lifecycle.virt.domain_xml import NetworkDisk

LOG = logging.getLogger(__name__)

GiB = 1024 ** 3
BASE_DIR = '_base'
LOCK_DIR = '.locks'
DISK_NAME = 'disk'
DISK_INFO_NAME = 'disk.info'
_BASE_NAME_RE = re.compile(r'^[0-9a-f]{40}$')


@dataclasses.dataclass(frozen=True)
class DiskInfo:
    # A file or block device path, or a NetworkDisk (path-like) for a disk
    # QEMU reaches over the network; the domain XML is built from it as is.
    path: 'str | NetworkDisk'
    format: str  # 'qcow2' | 'raw'


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return float('inf')  # gone meanwhile: not a candidate


class StorageBackend(abc.ABC):
    """Root disks of one storage group, kept under ``instances_path``."""

    name: str = ''
    disk_format: str = ''

    def __init__(self, instances_path: str,
                 storage_group: str | None = None) -> None:
        if not instances_path:
            raise exception.InvalidConfiguration(
                reason='instances_path must be set')
        self.instances_path = os.path.abspath(instances_path)
        self.base_dir = os.path.join(self.instances_path, BASE_DIR)
        self.storage_group = storage_group

    # -- paths -------------------------------------------------------------

    def instance_dir(self, instance_uuid: str) -> str:
        name = paths.canonical_uuid(instance_uuid)
        paths.confine(self.instances_path, name)
        return os.path.join(self.instances_path, name)

    def disk_path(self, instance_uuid: str) -> str:
        path = os.path.join(self.instance_dir(instance_uuid), DISK_NAME)
        paths.confine(self.instances_path, path)
        return path

    def base_path(self, image_id: str) -> str:
        if not image_id or not isinstance(image_id, str):
            raise exception.InvalidInput(reason='image id must be set')
        name = hashlib.sha1(image_id.encode('utf-8')).hexdigest()
        return os.path.join(self.base_dir, name)

    # -- base images -------------------------------------------------------

    def _prepare_base_dir(self) -> None:
        os.makedirs(self.instances_path, paths.DIR_MODE, exist_ok=True)
        paths.ensure_dir(self.instances_path, self.base_dir)
        paths.ensure_dir(self.instances_path,
                         os.path.join(self.base_dir, LOCK_DIR))

    def base_lock(self, base: str):
        """The lock held while a disk is created from ``base``; whoever
        removes the base holds it too."""
        return lockutils.lock('base-' + os.path.basename(base), external=True,
                              lock_path=os.path.join(self.base_dir, LOCK_DIR))

    def _is_file(self, path: str) -> bool:
        """True for a regular file inside instances_path (not a symlink)."""
        paths.confine(self.instances_path, path)
        try:
            return stat.S_ISREG(os.lstat(path).st_mode)
        except FileNotFoundError:
            return False

    def ensure_base(self, image_id: str, fetch: Callable[[str], None],
                    disk_format: str | None = None) -> str:
        """Place the raw base of ``image_id`` once per group; return its path.

        ``fetch(tmp_path)`` writes the image to a temporary file in ``_base``
        while an interprocess lock on this base is held, so concurrent
        callers on any host of the group wait and then reuse it. The image is
        checked (raw/qcow2 only, no backing or data file, matching
        ``disk_format`` when given), converted to sparse raw when it is not
        raw, and renamed into place; on any failure the temporary files are
        removed and nothing is left at the base path.
        """
        base = self.base_path(image_id)
        self._prepare_base_dir()
        with self.base_lock(base):
            if self._is_file(base):
                os.utime(base)  # "recently used", for remove_unused_bases
                return base
            self._remove_partials(base)
            prefix = '.%s.' % os.path.basename(base)
            fd, tmp = tempfile.mkstemp(prefix=prefix, suffix='.part',
                                       dir=self.base_dir)
            os.close(fd)
            converted = tmp + '.raw'
            try:
                fetch(tmp)
                data = qemu_img.inspect_untrusted(tmp, disk_format)
                if data['format'] == 'raw':
                    ready = tmp
                else:
                    qemu_img.convert(tmp, converted, data['format'], 'raw')
                    ready = converted
                os.chmod(ready, paths.FILE_MODE)
                paths.fsync_file(ready)
                os.rename(ready, base)
                paths.fsync_dir(self.base_dir)
            except Exception as e:
                LOG.warning('Placing base %(base)s of image %(image)s failed: '
                            '%(err)s', {'base': base, 'image': image_id,
                                        'err': e})
                if isinstance(e, exception.LifecycleException):
                    raise
                raise exception.ImageFetchError(image_id=image_id,
                                                reason=str(e)) from e
            finally:
                paths.remove_quietly(tmp)
                paths.remove_quietly(converted)
            LOG.info('Placed base %(base)s of image %(image)s',
                     {'base': base, 'image': image_id})
            return base

    def _remove_partials(self, base: str) -> None:
        """Drop temp files a crashed fetch of ``base`` left (lock held)."""
        prefix = '.%s.' % os.path.basename(base)
        for entry in os.scandir(self.base_dir):
            if entry.name.startswith(prefix) and '.part' in entry.name:
                LOG.info('Removing stale partial base %s', entry.path)
                paths.remove_quietly(entry.path)

    def list_bases(self) -> list[str]:
        """Every base image file present in ``_base``."""
        try:
            entries = list(os.scandir(self.base_dir))
        except FileNotFoundError:
            return []
        return sorted(e.path for e in entries
                      if _BASE_NAME_RE.match(e.name)
                      and e.is_file(follow_symlinks=False))

    # -- root disks --------------------------------------------------------

    @abc.abstractmethod
    def create_root_disk(self, instance_uuid: str, image_id: str,
                         size_gb: int) -> DiskInfo:
        """Create ``<uuid>/disk`` from the base of ``image_id``; idempotent."""

    def _check_existing(self, path: str) -> None:
        """Raise StorageError unless the disk at ``path`` is usable."""
        qemu_img.info(path, self.disk_format)

    def _create_from_base(self, instance_uuid: str, image_id: str,
                          size_gb: int,
                          build: Callable[[str, str, int], None]) -> DiskInfo:
        """Shared create_root_disk: ``build(base, tmp, size_bytes)``.

        Runs under the base's lock (so the base cannot be removed meanwhile),
        writes a temporary file and renames it to ``disk``: a crash never
        leaves a half-built ``disk``. An existing valid disk is returned
        untouched; an existing invalid one raises (never overwritten).
        """
        if size_gb < 0:
            raise exception.InvalidInput(reason='size_gb must be >= 0')
        disk = self.disk_path(instance_uuid)
        if self._is_file(disk):
            self._check_existing(disk)
            return self.disk_info(instance_uuid)
        base = self.base_path(image_id)
        self._prepare_base_dir()
        inst_dir = paths.ensure_dir(self.instances_path,
                                    self.instance_dir(instance_uuid))
        with self.base_lock(base):
            if self._is_file(disk):  # created while we waited for the lock
                self._check_existing(disk)
                return self.disk_info(instance_uuid)
            if not self._is_file(base):
                raise exception.StorageError(
                    reason='base %s of image %s is not present'
                           % (base, image_id))
            size = max(size_gb * GiB, qemu_img.virtual_size(base, 'raw'))
            tmp = disk + '.part'
            paths.remove_quietly(tmp)
            try:
                build(base, tmp, size)
                os.chmod(tmp, paths.FILE_MODE)
                paths.fsync_file(tmp)
                paths.write_json_atomic(
                    os.path.join(inst_dir, DISK_INFO_NAME),
                    {DISK_NAME: self.disk_format})
                os.rename(tmp, disk)
                paths.fsync_dir(inst_dir)
            finally:
                paths.remove_quietly(tmp)
        LOG.info('Created %(fmt)s root disk %(disk)s (%(size)d bytes) from '
                 'image %(image)s', {'fmt': self.disk_format, 'disk': disk,
                                     'size': size, 'image': image_id})
        return DiskInfo(path=disk, format=self.disk_format)

    def disk_info(self, instance_uuid: str) -> DiskInfo:
        disk = self.disk_path(instance_uuid)
        try:
            st = os.lstat(disk)
        except FileNotFoundError:
            raise exception.RetainedDiskNotFound(instance_uuid=instance_uuid,
                                                 path=disk) from None
        if not stat.S_ISREG(st.st_mode):
            raise exception.UnsafePath(path=disk, root=self.instances_path)
        fmt = self.disk_format
        info_path = os.path.join(os.path.dirname(disk), DISK_INFO_NAME)
        if self._is_file(info_path):
            try:
                with open(info_path) as f:
                    fmt = json.load(f)[DISK_NAME]
            except (OSError, ValueError, KeyError) as e:
                raise exception.StorageError(
                    reason='unreadable %s: %s' % (info_path, e)) from e
            if fmt not in qemu_img.FORMATS:
                raise exception.StorageError(
                    reason='%s records unknown format %r' % (info_path, fmt))
        return DiskInfo(path=disk, format=fmt)

    def exists(self, instance_uuid: str) -> bool:
        return self._is_file(self.disk_path(instance_uuid))

    def scratch_path(self, instance_uuid: str, name: str) -> str:
        """A local file ``name`` in the instance's directory (created if
        missing), for temporary copies such as an upload's; ``delete``
        removes it with the directory."""
        inst_dir = paths.ensure_dir(self.instances_path,
                                    self.instance_dir(instance_uuid))
        return paths.confine(self.instances_path,
                             os.path.join(inst_dir, name))

    def export_disk(self, instance_uuid: str, dest: str,
                    out_format: str = 'qcow2') -> None:
        """Write a flattened, sparse copy of the root disk to ``dest``."""
        disk = self.disk_info(instance_uuid)
        qemu_img.convert(disk.path, dest, disk.format, out_format, sparse=True)

    def delete(self, instance_uuid: str) -> int:
        freed = paths.remove_tree(self.instances_path,
                                  self.instance_dir(instance_uuid))
        if freed:
            LOG.info('Deleted storage of instance %(uuid)s, %(freed)d bytes',
                     {'uuid': instance_uuid, 'freed': freed})
        return freed

    def allocated_bytes(self, instance_uuid: str) -> int:
        return paths.allocated_bytes(self.instance_dir(instance_uuid))

    def instance_uuids(self) -> list[str]:
        """Uuids of the instance directories present (symlinks skipped)."""
        return paths.instance_names(self.instances_path)

    # -- base image garbage collection -------------------------------------

    def referenced_bases(self, instance_names: Iterable[str] | None = None
                         ) -> set[str]:
        """Base files that a qcow2 file in any instance directory (or in
        those of ``instance_names``) uses.

        Every regular file with a qcow2 header is looked at (not only
        ``disk``) and its backing chain followed; a backing file is matched
        to a base by its name inside a ``_base`` directory as well as by its
        resolved path, so a base is rather pinned by mistake than freed.
        """
        bases = {os.path.basename(b): b for b in self.list_bases()}
        real = {os.path.realpath(b): b for b in bases.values()}
        found: set[str] = set()
        if instance_names is None:
            instance_names = self.instance_uuids()
        for uuid in instance_names:
            inst_dir = os.path.join(self.instances_path, uuid)
            try:
                entries = list(os.scandir(inst_dir))
            except FileNotFoundError:  # deleted meanwhile
                continue
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                for backing in qemu_img.backing_chain(entry.path):
                    name = os.path.basename(backing)
                    parent = os.path.basename(os.path.dirname(backing))
                    if parent == BASE_DIR and name in bases:
                        found.add(bases[name])
                    else:
                        found.add(real.get(os.path.realpath(backing),
                                           backing))
        return found

    def remove_unused_bases(self, dry_run: bool = True,
                            min_age_seconds: float = 0) -> list[str]:
        """Remove bases no instance disk uses; return them (or would-be).

        Candidates must be unused for ``min_age_seconds`` (by mtime, which
        ensure_base refreshes). Before removing, each candidate's lock is
        taken and the references are scanned again, so a disk being created
        from a base at that moment keeps it.
        """
        oldest = time.time() - min_age_seconds
        referenced = self.referenced_bases()
        candidates = [b for b in self.list_bases() if b not in referenced
                      and _mtime(b) <= oldest]
        if dry_run:
            return candidates
        return [base for base in candidates
                if self.remove_base_if_unused(base, oldest)[0] is not None]

    def remove_base_if_unused(self, base: str, unused_since: float
                              ) -> tuple[int | None, str]:
        """Remove ``base`` unless a disk uses it or it was used after
        ``unused_since`` (its mtime, which ensure_base refreshes), checked
        under the lock creating a disk from it takes: no disk can be
        created from it meanwhile. (bytes freed, what was done), or (None,
        why it stays). The one removal of a base, for
        :meth:`remove_unused_bases` and ``lifecycle-manage disks
        cleanup``."""
        with self.base_lock(base):
            if base not in self.list_bases():
                return None, 'already gone'
            if _mtime(base) > unused_since:
                return None, 'used again since it was found unused'
            if base in self.referenced_bases():
                return None, 'a disk uses it now'
            freed = paths.remove_tree(self.instances_path, base)
        LOG.info('Removed unused base %s', base)
        return freed, 'base image removed'
