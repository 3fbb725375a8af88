"""qcow2 overlays over shared raw bases (Nova's default ``images_type``).

The root disk is ``qemu-img create -f qcow2 -F raw -b <base> disk <size>``:
only what the guest writes lands in the instance directory, the base stays
shared by every instance of the image in the storage group. The backing
path is absolute, so every host must mount the group's storage at the same
``instances_path`` (as with Nova on shared storage).
"""

import os

from oslo_log import log as logging

from lifecycle import exception
from lifecycle.storage import base
from lifecycle.storage import qemu_img

LOG = logging.getLogger(__name__)


class Qcow2Backend(base.StorageBackend):
    name = 'qcow2'
    disk_format = 'qcow2'

    def create_root_disk(self, instance_uuid: str, image_id: str,
                         size_gb: int) -> base.DiskInfo:
        return self._create_from_base(instance_uuid, image_id, size_gb,
                                      self._build)

    @staticmethod
    def _build(base_file: str, dest: str, size_bytes: int) -> None:
        qemu_img.create_overlay(base_file, dest, size_bytes, base_format='raw')

    def _check_existing(self, path: str) -> None:
        data = qemu_img.info(path, 'qcow2')
        backing = data.get('full-backing-filename') or data.get(
            'backing-filename')
        if not backing or not os.path.isfile(backing):
            raise exception.StorageError(
                reason='existing disk %s has a missing backing file %r'
                       % (path, backing))
        LOG.debug('Reusing existing root disk %(path)s over %(backing)s',
                  {'path': path, 'backing': backing})
