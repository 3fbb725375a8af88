"""Flat raw root disks: a full (sparse) copy of the base per instance.

Nothing in the instance directory depends on ``_base`` once the copy is
made, so bases can be removed whenever no disk is being created from them.
"""

import os

from oslo_log import log as logging

from lifecycle import exception
from lifecycle.storage import base
from lifecycle.storage import qemu_img

LOG = logging.getLogger(__name__)


class FlatBackend(base.StorageBackend):
    name = 'flat'
    disk_format = 'raw'

    def create_root_disk(self, instance_uuid: str, image_id: str,
                         size_gb: int) -> base.DiskInfo:
        return self._create_from_base(instance_uuid, image_id, size_gb,
                                      self._build)

    @staticmethod
    def _build(base_file: str, dest: str, size_bytes: int) -> None:
        qemu_img.convert(base_file, dest, 'raw', 'raw', sparse=True)
        if size_bytes > os.path.getsize(dest):
            qemu_img.resize(dest, size_bytes, 'raw')

    def _check_existing(self, path: str) -> None:
        if os.path.getsize(path) == 0:
            raise exception.StorageError(
                reason='existing disk %s is empty' % path)
        LOG.debug('Reusing existing root disk %s', path)
