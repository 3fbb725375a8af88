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
from lifecycle.storage import paths
from lifecycle import names

LOG = logging.getLogger(__name__)

UPLOAD_FILE = 'disk.shelve-upload'


def shelved_image_name(instance: models.Instance) -> str:
    """Nova's name for a shelved instance's snapshot."""
    return '%s-shelved' % instance.display_name


def upload_retained_disk(storage: base.StorageBackend, image_service,
                         instance: models.Instance) -> dict:
    """Upload the instance's root disk; returns the verified image, which
    belongs to the instance's project (as Nova's shelve snapshot): its
    owner can see, boot and delete it, another project cannot."""
    storage.disk_info(instance.uuid)  # RetainedDiskNotFound before work
    # The backend reads its own disk (a file, or an RBD image for rbd).
    staging = storage.scratch_path(instance.uuid, UPLOAD_FILE)
    paths.remove_quietly(staging)  # a crashed earlier attempt's copy
    try:
        storage.export_disk(instance.uuid, staging, 'qcow2')
        LOG.info('Uploading the root disk of instance %s (%d bytes '
                 'flattened)', instance.uuid, os.path.getsize(staging))
        return image_service.upload(
            shelved_image_name(instance), staging, 'qcow2',
            {'instance_uuid': instance.uuid,
             names.IMAGE_SHELVED_INSTANCE: instance.uuid,
             'image_type': 'snapshot',
             'base_image_ref': instance.image_ref or ''},
            owner=instance.project_id)
    finally:
        paths.remove_quietly(staging)


def delete_unrecorded_images(image_service, instance: models.Instance) -> int:
    """Delete this instance's shelved images that no record names: left by
    an upload that was interrupted (its id never reached the database).
    Called before a (resumed) upload, while the retained disk is still the
    instance's data; returns how many went."""
    recorded = instance.system_metadata.get(names.SHELVED_IMAGE_ID)
    name = shelved_image_name(instance)
    deleted = 0
    for image in image_service.list(name=name):
        if (image.get('id') != recorded and
                (image.get('properties') or {}).get('instance_uuid') ==
                instance.uuid):
            LOG.info('Deleting image %s of an interrupted upload of '
                     'instance %s', image['id'], instance.uuid)
            deleted += image_service.delete(image['id'])
    return deleted
