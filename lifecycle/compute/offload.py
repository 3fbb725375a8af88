"""Full offload: a retained root disk becomes an image in the image service.

The upload is a flattened, sparse qcow2 copy of the disk (an overlay loses
its backing file, a raw disk its zero blocks), written next to the disk on
the group's storage and streamed to the image service, which verifies size
and checksums before the image is trusted. Deleting the retained disk is the
caller's business, and only after the image id is durably recorded.
"""

import os

from oslo_log import log as logging

from lifecycle.db import models
from lifecycle.storage import base
from lifecycle.storage import images
from lifecycle.storage import paths

LOG = logging.getLogger(__name__)

UPLOAD_FILE = 'disk.shelve-upload'


def shelved_image_name(instance: models.Instance) -> str:
    """Nova's name for a shelved instance's snapshot."""
    return '%s-shelved' % instance.display_name


def upload_retained_disk(storage: base.StorageBackend, image_service,
                         instance: models.Instance) -> dict:
    """Upload the instance's root disk; returns the verified image."""
    disk = storage.disk_info(instance.uuid)
    staging = os.path.join(storage.instance_dir(instance.uuid), UPLOAD_FILE)
    paths.remove_quietly(staging)  # a crashed earlier attempt's copy
    try:
        images.convert(disk.path, staging, disk.format, 'qcow2', sparse=True)
        LOG.info('Uploading the root disk of instance %s (%d bytes '
                 'flattened)', instance.uuid, os.path.getsize(staging))
        return image_service.upload(
            shelved_image_name(instance), staging, 'qcow2',
            {'instance_uuid': instance.uuid,
             'image_type': 'snapshot',
             'base_image_ref': instance.image_ref or ''})
    finally:
        paths.remove_quietly(staging)
