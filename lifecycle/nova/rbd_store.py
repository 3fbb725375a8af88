"""The retained disks of one Ceph pool (``[libvirt] images_type = rbd``).

Nova's ``Rbd`` image backend keeps an instance's disks as ``<uuid>_disk``
(and ``<uuid>_disk.local``, ``<uuid>_disk.swap``, ``<uuid>_disk.config``)
in ``[libvirt] images_rbd_pool``; the hosts of a storage group use the
same pool. A retained root disk carries a marker in its RBD image metadata
(key ``partial_offload``, the same JSON document as the file marker of
:mod:`lifecycle.nova.storage`): the periodic pass and ``lifecycle-manage
nova disks`` look only at marked images, never at the disks Nova manages.

The same interface as :class:`lifecycle.nova.storage.FileStore`
(``retained``, ``write_marker``, ``remove_marker``, ``disk_bytes``,
``remove``, ``usage``), through Nova's own ``nova.storage.rbd_utils``.

Usage of the pool, for the watermarks: with a pool quota (``ceph osd pool
set-quota POOL max_bytes N``, read from the OSD map) the capacity is the
quota and the usage the bytes the pool's images allocate themselves (their
own objects, not their parents'); without a quota, Nova's own
``RBDDriver.get_pool_info`` (``ceph df``: the pool's ``bytes_used``
against ``bytes_used + max_avail``, which needs a ceph-mgr).
"""

import json

from nova.storage import rbd_utils
from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle.nova import storage

LOG = logging.getLogger(__name__)

#: RBD image metadata key of the retained-disk marker.
MARKER_KEY = 'partial_offload'
_ROOT_SUFFIX = '_' + storage.ROOT_DISK


class RbdStore:
    """The retained disks of one pool (Nova's configured one by default)."""

    def __init__(self, pool: str | None = None):
        self.driver = rbd_utils.RBDDriver(pool=pool)
        self.pool = self.driver.pool

    def root_name(self, instance_uuid: str) -> str:
        return instance_uuid + _ROOT_SUFFIX

    def location(self, instance_uuid: str) -> str:
        return storage.rbd_location(self.pool, instance_uuid)

    def describe(self, instance_uuid: str) -> str:
        """Where the disk is, for reports."""
        return 'rbd:%s/%s*' % (self.pool, instance_uuid + '_')

    def _volume(self, name: str, read_only: bool = False):
        return rbd_utils.RBDVolumeProxy(self.driver, name,
                                        read_only=read_only)

    # --- markers ----------------------------------------------------------

    def write_marker(self, instance_uuid: str, group: str, host: str,
                     location: str) -> None:
        doc = json.dumps({'storage_group': group, 'host': host,
                          'disk': location,
                          'retained_at': timeutils.utcnow().isoformat()})
        with self._volume(self.root_name(instance_uuid)) as vol:
            vol.metadata_set(MARKER_KEY, doc)

    def _read(self, name: str) -> dict | None:
        try:
            with self._volume(name, read_only=True) as vol:
                raw = vol.metadata_get(MARKER_KEY)
        except (KeyError, rbd_utils.rbd.ImageNotFound):
            return None
        try:
            return json.loads(raw)
        except ValueError:
            LOG.warning('Unreadable %s marker on %s/%s: %r', MARKER_KEY,
                        self.pool, name, raw)
            return None

    def read_marker(self, instance_uuid: str) -> dict | None:
        return self._read(self.root_name(instance_uuid))

    def remove_marker(self, instance_uuid: str) -> None:
        try:
            with self._volume(self.root_name(instance_uuid)) as vol:
                vol.metadata_remove(MARKER_KEY)
        except (KeyError, rbd_utils.rbd.ImageNotFound):
            pass

    def _names(self) -> list[str]:
        with rbd_utils.RADOSClient(self.driver, self.pool) as client:
            return list(rbd_utils.RbdProxy().list(client.ioctx))

    def retained(self) -> dict[str, dict]:
        """{instance uuid: marker} of every marked root disk of the pool."""
        found = {}
        for name in self._names():
            if not name.endswith(_ROOT_SUFFIX):
                continue
            marker = self._read(name)
            if marker is not None:
                found[name[:-len(_ROOT_SUFFIX)]] = marker
        return found

    # --- sizes, removal ---------------------------------------------------

    def _allocated(self, name: str) -> int:
        """Bytes of the image's own objects (not its parent's)."""
        extents = []
        try:
            with self._volume(name, read_only=True) as vol:
                vol.diff_iterate(0, vol.size(), None,
                                 lambda _off, length, exists: extents.append(
                                     length if exists else 0),
                                 include_parent=False)
        except rbd_utils.rbd.ImageNotFound:
            return 0
        return sum(extents)

    def _instance_names(self, instance_uuid: str, names=None) -> list[str]:
        prefix = instance_uuid + '_'
        return [n for n in (names if names is not None else self._names())
                if n.startswith(prefix)]

    def disk_bytes(self, instance_uuid: str) -> int:
        """Bytes the instance's disks allocate (what removing them frees)."""
        return sum(self._allocated(n)
                   for n in self._instance_names(instance_uuid))

    def remove(self, instance_uuid: str) -> None:
        """Remove every disk of the instance (as Nova's ``_cleanup_rbd``
        does on delete: root, ephemeral, swap, config drive). Raises
        FileNotFoundError when there is none, StorageError when one
        stays."""
        if not self._instance_names(instance_uuid):
            raise FileNotFoundError(self.describe(instance_uuid))
        prefix = instance_uuid + '_'
        self.driver.cleanup_volumes(lambda name: name.startswith(prefix))
        left = self._instance_names(instance_uuid)
        if left:
            # Nova's cleanup logs and gives up on a busy image or one with
            # snapshots: say so rather than report it removed.
            from nova import exception
            raise exception.StorageError(
                reason='%s/%s could not be removed' % (self.pool,
                                                       ', '.join(left)))
        LOG.info('Removed the retained disks %s', self.describe(
            instance_uuid))

    def _quota(self) -> int:
        # From the OSD map (the monitors alone), not "osd pool get-quota",
        # which also wants the pool's statistics from a ceph-mgr.
        with rbd_utils.RADOSClient(self.driver, self.pool) as client:
            ret, out, err = client.cluster.mon_command(json.dumps({
                'prefix': 'osd dump', 'format': 'json'}), b'')
        if ret:
            raise OSError(-ret, 'osd dump: %s' % err)
        for pool in json.loads(out).get('pools', []):
            if pool.get('pool_name') == self.pool:
                return int(pool.get('quota_max_bytes') or 0)
        raise OSError('pool %s not in the OSD map' % self.pool)

    def usage(self) -> tuple[int, int]:
        """(used bytes, capacity bytes) of the pool (see the module
        docstring)."""
        quota = self._quota()
        if quota:
            names = self._names()
            return sum(self._allocated(n) for n in names), quota
        info = self.driver.get_pool_info()
        return info['used'], info['used'] + info['free']
