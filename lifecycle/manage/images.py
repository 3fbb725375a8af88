"""Leftover shelved images: images a full offload made (property
``instance_uuid``, name ``<instance name>-shelved``) that no instance needs
any more, because the instance is deleted or was unshelved and no longer
names the image in ``shelved_image_id``. An unshelve deletes its image once
the instance runs; one that could not (image service down) leaves it here.
"""

import os

from lifecycle import deploy
from lifecycle import exception
from lifecycle import states

LEFTOVER_IMAGE = 'leftover-image'


def image_service(conf):
    """The image source the deployment's services use."""
    local_dir = conf.image.local_dir
    if not local_dir and conf.aio.state_dir:
        local_dir = os.path.join(conf.aio.state_dir, 'images')
    return deploy.build_image_service(local_dir)


def why_leftover(db, image: dict) -> str | None:
    """Why ``image`` is a leftover shelved image, or None if it is not one
    (or might still be needed)."""
    owner = (image.get('properties') or {}).get('instance_uuid')
    if not owner or not image.get('name', '').endswith('-shelved'):
        return None
    try:
        instance = db.instance_get(owner)
    except exception.InstanceNotFound:
        return 'instance %s is deleted' % owner
    if instance.system_metadata.get('shelved_image_id') == image['id']:
        return None
    if instance.task_state == states.SHELVING_IMAGE_UPLOADING:
        return None  # an upload in progress may be about to name it
    return 'instance %s does not use it (%s)' % (owner, instance.vm_state)


def find(db, images) -> list[tuple[dict, str]]:
    return [(image, why) for image in images.list()
            if (why := why_leftover(db, image))]
