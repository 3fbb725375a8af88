"""Leftover shelved images: images a full offload of this project made that
no instance needs any more, because the instance is deleted or was
unshelved and no longer names the image in ``shelved_image_id``. An
unshelve deletes its image once the instance runs; one that could not
(image service down) leaves it here.

An image is this project's only when it carries the property
:data:`lifecycle.names.IMAGE_SHELVED_INSTANCE` (set by
``lifecycle.compute.disk_upload`` on every image it uploads). Name
(``<server>-shelved``) and ``instance_uuid`` are *not* enough: Nova's own
shelve snapshots carry exactly those, and a Glance shared with Nova holds
them -- deleting one would destroy the only copy of a Nova server.
"""

from lifecycle import exception
from lifecycle import names
from lifecycle import states
from lifecycle.manage import findings

LEFTOVER_IMAGE = findings.LEFTOVER_IMAGE


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
