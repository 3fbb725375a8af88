"""Leftover shelved images: images a full offload of this project made that
no instance needs any more, because the instance is deleted or was
unshelved and no longer names the image in ``shelved_image_id``. An
unshelve deletes its image once the instance runs; one that could not
(image service down) leaves it here.

An image is this project's only when it carries the property
:data:`lifecycle.names.IMAGE_SHELVED_INSTANCE` (set by
``lifecycle.compute.offload`` on every image it uploads). Name
(``<server>-shelved``) and ``instance_uuid`` are *not* enough: Nova's own
shelve snapshots carry exactly those, and a Glance shared with Nova holds
them -- deleting one would destroy the only copy of a Nova server.
"""

import os

from lifecycle import exception
from lifecycle import image as image_sources
from lifecycle import names
from lifecycle import states
from lifecycle.manage import findings
from lifecycle.storage import paths

LEFTOVER_IMAGE = findings.LEFTOVER_IMAGE


def local_dir(conf) -> str | None:
    """The local image directory of the deployment's configuration."""
    if conf.image.local_dir:
        return conf.image.local_dir
    if conf.aio.state_dir:
        return os.path.join(conf.aio.state_dir, 'images')
    return None


def image_service(conf, create: bool = False):
    """The image source the deployment's services use, or None when it is a
    local directory that does not exist (and ``create`` is False): a
    read-only command never creates it."""
    directory = local_dir(conf)
    if conf.image.source == 'local' and directory:
        if create:
            # As the services make it: QEMU must traverse it.
            paths.make_service_dir(directory)
        elif not os.path.isdir(directory):
            return None
    return image_sources.get_image_service(conf, directory)


def owner_of(image: dict) -> str | None:
    """The instance whose full offload made ``image``, None when this
    project did not make it."""
    return (image.get('properties') or {}).get(
        names.IMAGE_SHELVED_INSTANCE) or None


def why_leftover(db, image: dict) -> str | None:
    """Why ``image`` is a leftover shelved image, or None if it is not one
    (not this project's, or might still be needed)."""
    owner = owner_of(image)
    if not owner:
        return None
    try:
        instance = db.instance_get(owner)
    except exception.InstanceNotFound:
        return 'instance %s is deleted' % owner
    if instance.system_metadata.get(names.SHELVED_IMAGE_ID) == image['id']:
        return None
    if instance.task_state == states.SHELVING_IMAGE_UPLOADING:
        return None  # an upload in progress may be about to name it
    return 'instance %s does not use it (%s)' % (owner, instance.vm_state)


def find(db, images) -> list[tuple[dict, str]]:
    if images is None:
        return []
    return [(image, why) for image in images.list()
            if (why := why_leftover(db, image))]
