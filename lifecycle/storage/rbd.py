"""Root disks as copy-on-write clones in a Ceph RBD pool.

The storage group is a pool (``[rbd] storage_groups``, settings per group,
see :mod:`lifecycle.conf.rbd`)::

    <pool>/base_<sha1(image id)>       raw base image, imported once per group
    <pool>/base_<sha1(image id)>@snap  its protected snapshot
    <pool>/<instance uuid>_disk        root disk: a clone of that snapshot

Spawning clones the snapshot (no data copied); shelving keeps the clone;
unshelving on any host of the group attaches the same clone -- no flatten,
no copy. The domain reaches it as a network disk
(:class:`~lifecycle.virt.domain_xml.NetworkDisk`). A base's snapshot is
unprotected and the base removed only when the snapshot has no clone left
(``rbd children``); Ceph itself refuses to unprotect a snapshot that still
has children, so a race with a new clone cannot lose data.

The local ``instances_path`` still serves as scratch space: an image being
imported is fetched and checked there first (as the file backends do, see
:meth:`StorageBackend.ensure_base`), a full offload's upload copy is
written there, and interprocess locks live there.

Several hosts of the group may import the same base at once: each imports
under a temporary name and renames it into place; Ceph's rename is atomic
and refuses an existing name, so exactly one wins and the others remove
their copy.
"""

import calendar
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable

from oslo_log import log as logging

from lifecycle import exception
from lifecycle.exception import BaseInUse
from lifecycle.conf import CONF
from lifecycle.conf import rbd as rbd_conf
from lifecycle.storage import base
from lifecycle.storage import qemu_img
from lifecycle.storage import paths
from lifecycle.storage import rbd_client
from lifecycle.virt import domain_xml

LOG = logging.getLogger(__name__)

BASE_PREFIX = 'base_'
DISK_SUFFIX = '_disk'
SNAP = 'snap'
PARTIAL_MARK = '.part-'
LAST_USED_KEY = 'lifecycle.last_used'
MONITOR_CACHE_SECONDS = 60
BASE_RE = re.compile(r'^base_[0-9a-f]{40}$')
DISK_RE = re.compile(r'^([0-9a-f-]{36})_disk$')


def _rbd_time(value: str | None) -> float | None:
    """Seconds since the epoch of an ``rbd`` timestamp (``Sun Nov 22
    05:43:20 2026``, printed in UTC by the daemons' clock here)."""
    try:
        return calendar.timegm(time.strptime(value or '',
                                             '%a %b %d %H:%M:%S %Y'))
    except ValueError:
        return None


class RbdBackend(base.StorageBackend):
    name = 'rbd'
    disk_format = 'raw'

    def __init__(self, instances_path: str,
                 storage_group: str | None = None,
                 settings: dict | None = None) -> None:
        super().__init__(instances_path, storage_group)
        settings = settings or rbd_conf.settings(CONF, storage_group)
        # The path ends up in QEMU's "rbd:pool/image:conf=PATH" file names,
        # where a colon would start another option.
        if (':' in settings['ceph_conf'] or
                not settings['ceph_conf'].startswith('/')):
            raise exception.InvalidConfiguration(
                reason='[rbd] ceph_conf must be an absolute path without ":"')
        self.ceph_conf = settings['ceph_conf']
        self.user = settings['user'] or None
        self.secret_uuid = settings['secret_uuid'] or None
        self.client = rbd_client.RbdClient(
            self.ceph_conf, settings['pool'], self.user, settings['timeout'])
        self.pool = self.client.pool
        self._monitors: tuple[float, tuple] | None = None
        self._monitors_lock = threading.Lock()

    # -- names ------------------------------------------------------------

    def base_name(self, image_id: str) -> str:
        if not image_id or not isinstance(image_id, str):
            raise exception.InvalidInput(reason='image id must be set')
        return BASE_PREFIX + hashlib.sha1(image_id.encode('utf-8')).hexdigest()

    def disk_name(self, instance_uuid: str) -> str:
        return paths.canonical_uuid(instance_uuid) + DISK_SUFFIX

    def qemu_filename(self, image: str) -> str:
        """QEMU's legacy ``rbd:`` file name of ``image`` (qemu-img,
        qemu-io)."""
        name = 'rbd:%s' % self.client.spec(image)
        if self.user:
            name += ':id=%s' % self.user
        return name + ':conf=%s' % self.ceph_conf

    def monitors(self) -> tuple[tuple[str, int], ...]:
        with self._monitors_lock:
            now = time.monotonic()
            if (self._monitors is None or
                    now - self._monitors[0] > MONITOR_CACHE_SECONDS):
                self._monitors = (now, tuple(self.client.monitors()))
            return self._monitors[1]

    # -- base images ------------------------------------------------------

    def _base_ready(self, name: str) -> bool:
        """True when ``name`` exists with its protected snapshot; an image
        of that name in any other shape is refused, never reused."""
        try:
            snaps = self.client.snapshots(name)
        except exception.RbdCommandError as e:
            if e.errno == rbd_client.ENOENT:
                return False
            raise
        if any(s['name'] == SNAP and s['protected'] for s in snaps):
            return True
        raise exception.StorageError(
            reason='%s exists without a protected snapshot %s'
                   % (self.client.spec(name), SNAP))

    def _touch(self, name: str) -> None:
        # "Recently used", for remove_unused_bases' minimum age.
        self.client.rbd('image-meta', 'set', self.client.spec(name),
                        LAST_USED_KEY, str(int(time.time())))

    def last_used(self, name: str) -> float:
        meta = self.client.rbd_json('image-meta', 'list',
                                    self.client.spec(name)) or {}
        try:
            return float(meta[LAST_USED_KEY])
        except (KeyError, ValueError):
            created = _rbd_time((self.client.info(name) or {}).get(
                'create_timestamp'))
            return created if created is not None else 0.0

    def ensure_base(self, image_id: str, fetch: Callable[[str], None],
                    disk_format: str | None = None) -> str:
        """Import the base of ``image_id`` into the pool once per group;
        return its image name.

        The image is fetched and checked in the local scratch ``_base``
        (the file backends' code: raw/qcow2 only, converted to raw), then
        imported under a temporary name, snapshotted, the snapshot
        protected, and renamed into place; the local copy goes.
        """
        name = self.base_name(image_id)
        self._prepare_base_dir()
        with self.base_lock(name):
            if self._base_ready(name):
                self._touch(name)
                return name
            local = super().ensure_base(image_id, fetch, disk_format)
            tmp = '%s%s%s' % (name, PARTIAL_MARK, uuid.uuid4().hex[:8])
            try:
                self.client.import_file(local, tmp)
                self.client.snap_create(tmp, SNAP)
                self.client.snap_protect(tmp, SNAP)
                self._touch(tmp)
                try:
                    self.client.rename(tmp, name)
                except exception.RbdCommandError as e:
                    if e.errno != rbd_client.EEXIST:
                        raise
                    LOG.info('Base %(name)s was imported by another host '
                             'meanwhile; dropping ours', {'name': name})
                    self._remove_image_and_snaps(tmp)
            except Exception:
                self._remove_image_and_snaps(tmp, quiet=True)
                raise
            finally:
                paths.remove_quietly(local)
        LOG.info('Base %(spec)s of image %(image)s is in the pool',
                 {'spec': self.client.spec(name), 'image': image_id})
        return name

    def _remove_image_and_snaps(self, name: str, quiet: bool = False
                                ) -> None:
        try:
            for snap in self.client.snapshots(name):
                if snap['protected']:
                    self.client.snap_unprotect(name, snap['name'])
                self.client.snap_remove(name, snap['name'])
            self.client.remove(name)
        except exception.RbdCommandError as e:
            if e.errno == rbd_client.ENOENT:
                return
            if not quiet:
                raise
            LOG.warning('Could not remove %(name)s: %(err)s',
                        {'name': name, 'err': e})

    def list_bases(self) -> list[str]:
        return [n for n in self.client.list_images() if BASE_RE.match(n)]

    def children(self, base_name: str) -> list[str]:
        """The clones of a base's snapshot (``rbd children``)."""
        try:
            return self.client.children(base_name, SNAP)
        except exception.RbdCommandError as e:
            if e.errno == rbd_client.ENOENT:
                return []
            raise

    def referenced_bases(self) -> set[str]:
        return {b for b in self.list_bases() if self.children(b)}

    def remove_base(self, base_name: str) -> None:
        """Unprotect and remove the snapshot, then the base; BaseInUse while
        the snapshot has clones (Ceph would refuse the unprotect too)."""
        rbd_client.check_name(base_name, 'image')
        self._prepare_base_dir()
        with self.base_lock(base_name):
            children = self.children(base_name)
            if children:
                raise BaseInUse(name=self.client.spec(base_name),
                                children=', '.join(children))
            self._remove_image_and_snaps(base_name)
        LOG.info('Removed base %s', self.client.spec(base_name))

    def remove_unused_bases(self, dry_run: bool = True,
                            min_age_seconds: float = 0) -> list[str]:
        oldest = time.time() - min_age_seconds
        candidates = [b for b in self.list_bases()
                      if not self.children(b) and self.last_used(b) <= oldest]
        if dry_run:
            return candidates
        removed = []
        for name in candidates:
            try:
                self.remove_base(name)
            except BaseInUse:
                continue  # cloned since the listing: keep it
            removed.append(name)
        return removed

    # -- root disks -------------------------------------------------------

    def create_root_disk(self, instance_uuid: str, image_id: str,
                         size_gb: int) -> base.DiskInfo:
        """Clone the base's snapshot as ``<uuid>_disk`` (idempotent), grown
        to ``size_gb`` (thin: nothing is written)."""
        if size_gb < 0:
            raise exception.InvalidInput(reason='size_gb must be >= 0')
        name = self.disk_name(instance_uuid)
        base_name = self.base_name(image_id)
        self._prepare_base_dir()
        with self.base_lock(base_name):
            info = self.client.info(name)
            if info is None:
                if not self._base_ready(base_name):
                    raise exception.StorageError(
                        reason='base %s of image %s is not in the pool'
                               % (self.client.spec(base_name), image_id))
                self.client.clone(base_name, SNAP, name)
                info = self.client.info(name)
                LOG.info('Cloned %(base)s@%(snap)s as root disk %(disk)s',
                         {'base': self.client.spec(base_name), 'snap': SNAP,
                          'disk': self.client.spec(name)})
            want = size_gb * base.GiB
            if info and want > int(info['size']):
                self.client.resize(name, want)
        return self.disk_info(instance_uuid)

    def disk_info(self, instance_uuid: str) -> base.DiskInfo:
        name = self.disk_name(instance_uuid)
        if not self.client.exists(name):
            raise exception.RetainedDiskNotFound(
                instance_uuid=instance_uuid,
                path='rbd:%s' % self.client.spec(name))
        disk = domain_xml.rbd_disk(
            self.pool, name, self.monitors(),
            paths.confine(self.instances_path, name),
            user=self.user, secret_uuid=self.secret_uuid)
        return base.DiskInfo(path=disk, format='raw')

    def exists(self, instance_uuid: str) -> bool:
        return self.client.exists(self.disk_name(instance_uuid))

    def export_disk(self, instance_uuid: str, dest: str,
                    out_format: str = 'qcow2') -> None:
        """A flattened copy of the clone (its parent's data included) --
        what a full offload uploads."""
        name = self.disk_name(instance_uuid)
        qemu_img.convert(self.qemu_filename(name), dest, 'raw', out_format,
                       sparse=True)

    def delete(self, instance_uuid: str) -> int:
        """Remove the clone (and the local scratch directory); returns the
        bytes the clone held itself."""
        name = self.disk_name(instance_uuid)
        freed = self.client.used_bytes(name)
        self.client.remove(name)
        freed += paths.remove_tree(self.instances_path,
                                   self.instance_dir(instance_uuid))
        if freed:
            LOG.info('Deleted root disk %(disk)s of instance %(uuid)s, '
                     '%(freed)d bytes', {'disk': self.client.spec(name),
                                         'uuid': instance_uuid,
                                         'freed': freed})
        return freed

    def allocated_bytes(self, instance_uuid: str) -> int:
        return self.client.used_bytes(self.disk_name(instance_uuid))

    def instance_uuids(self) -> list[str]:
        """Uuids of the ``<uuid>_disk`` images in the pool."""
        found = []
        for name in self.client.list_images():
            match = DISK_RE.match(name)
            if match:
                try:
                    if paths.canonical_uuid(match.group(1)) == match.group(1):
                        found.append(match.group(1))
                except exception.InvalidInput:
                    continue
        return found

    def partial_bases(self) -> list[str]:
        """Temporary images of imports that did not finish (a crash)."""
        return [n for n in self.client.list_images()
                if PARTIAL_MARK in n and BASE_RE.match(
                    n.split(PARTIAL_MARK)[0])]
