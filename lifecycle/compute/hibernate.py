"""Hibernate-shelve: a shelve that keeps the guest's memory.

The running guest is saved with libvirt's save into ``memory.save`` in its
instance directory, beside the retained disk on the storage group's
storage, so every host of the group can resume it. Then the shelve goes on
as a partial offload does (domain undefined, claim released). An unshelve
on any host of the group restores the guest from that file; the file is
deleted only once the unshelve is recorded. When the state cannot be
restored (damaged file, other QEMU, CPU the host lacks) the guest is booted
cold from its retained disk and a fault says why.

A saved state belongs to the disk as it was at save time: once a guest
restored from it has run, the file no longer matches the disk and is
discarded, whatever happens next.

Also here: the direct kernel boot of images with ``kernel_id`` and
``ramdisk_id`` (Nova's image properties): the kernel and ramdisk images
are downloaded into the instance directory (as Nova does), so they too are
on the group's storage.
"""

import os

from oslo_log import log as logging
from oslo_utils import strutils

from lifecycle import exception
from lifecycle import names
from lifecycle import notifications
from lifecycle import states
from lifecycle.compute import volumes
from lifecycle.conf import CONF
from lifecycle.db import models
from lifecycle.storage import paths
from lifecycle.virt import domain_xml

LOG = logging.getLogger(__name__)

MEMORY_STATE_NAME = 'memory.save'
KERNEL_NAME = 'kernel'
RAMDISK_NAME = 'ramdisk'
COLD_BOOT_FAULT = 'Memory state not restored (%s); booted from the disk'


def memory_state_path(storage, instance_uuid: str) -> str:
    """Where the instance's saved state lives (from configuration and the
    uuid, never from a recorded string)."""
    return paths.confine(storage.instances_path, os.path.join(
        storage.instance_dir(instance_uuid), MEMORY_STATE_NAME))


def relative_location(storage, instance_uuid: str) -> str:
    return os.path.relpath(memory_state_path(storage, instance_uuid),
                           storage.instances_path)


def supported(storage, instance: models.Instance) -> bool:
    """A file on the group's shared file system is needed for the state."""
    return storage.name != 'rbd' and not volumes.is_volume_backed(instance)


def wanted(instance: models.Instance, requested: bool | None) -> bool:
    """The request's choice, else the image's property, else
    ``[shelve] keep_memory``."""
    if requested is not None:
        return requested
    prop = instance.system_metadata.get(names.SYSMETA_IMAGE_KEEP_MEMORY)
    if prop is not None:
        return strutils.bool_from_string(prop)
    return CONF.shelve.keep_memory


def recorded(instance: models.Instance) -> bool:
    return bool(instance.system_metadata.get(names.SHELVED_MEMORY_STATE))


def save(parts, instance_uuid: str) -> str | None:
    """Save the running guest's memory; the location to record, or None
    when the guest does not run (then the shelve is a plain one).
    Idempotent: a guest already saved to the file gives the location."""
    storage = parts.storage
    path = memory_state_path(storage, instance_uuid)
    running = parts.driver.get_power_state(instance_uuid) == states.RUNNING
    if not running and not os.path.exists(path):
        LOG.info('Instance %s is not running: shelved without memory',
                 instance_uuid)
        return None
    paths.ensure_dir(storage.instances_path,
                     storage.instance_dir(instance_uuid))
    # Inside the shelve's own notifications, as Nova's instance.shutdown
    # inside instance.shelve.
    with notifications.instance_action(parts, None, instance_uuid,
                                       'hibernate'):
        parts.driver.save_memory(instance_uuid, path, host=parts.host)
    paths.fsync_dir(os.path.dirname(path))
    LOG.info('Instance %s hibernated: %d bytes of memory state in %s',
             instance_uuid, os.path.getsize(path), path)
    return relative_location(storage, instance_uuid)


def resume_or_boot(parts, instance: models.Instance,
                   spec: domain_xml.DomainSpec) -> str:
    """Restore the guest from its saved state, else boot it cold from its
    disk (recording a fault). 'running', 'restored' or 'booted'."""
    driver = parts.driver
    if driver.get_power_state(instance.uuid) == states.RUNNING:
        return 'running'   # an interrupted run got that far
    if recorded(instance):
        path = memory_state_path(parts.storage, instance.uuid)
        try:
            # .error carries the reason of a cold boot.
            with notifications.instance_action(parts, None, instance.uuid,
                                               'hibernate_resume'):
                if not os.path.isfile(path):
                    raise exception.SavedStateUnusable(
                        path=path, instance_uuid=instance.uuid,
                        reason='the file is missing')
                blocker = driver.restore_blocker(path)
                if blocker:
                    raise exception.SavedStateUnusable(
                        path=path, instance_uuid=instance.uuid,
                        reason=blocker)
                driver.restore_memory(spec, path)
            return 'restored'
        except exception.SavedStateUnusable as e:
            LOG.warning('Instance %s: %s; booting it from its disk instead',
                        instance.uuid, e.format_message())
            # The message holds the reason only, shortened so that the
            # outcome at its end survives the fault's 255 characters
            # (QEMU's load errors are longer); details keep all of it.
            reason = e.kwargs['reason']
            room = models.FAULT_MESSAGE_LENGTH - len(COLD_BOOT_FAULT % '')
            if len(reason) > room:
                reason = reason[:room - 3] + '...'
            parts.db.instance_fault_create(
                instance.uuid, 500, COLD_BOOT_FAULT % reason,
                details=exception.describe(e),
                host=parts.host)
    driver.spawn(spec)
    return 'booted'


def discard(parts, instance_uuid: str, why: str,
            instance: models.Instance | None = None) -> None:
    """Delete the saved state (missing is fine) and its record;
    ``instance``: the row as the caller holds it (else it is read)."""
    path = memory_state_path(parts.storage, instance_uuid)
    if os.path.exists(path):
        paths.remove_quietly(path)
        LOG.info('Deleted memory state %s of instance %s (%s)', path,
                 instance_uuid, why)
    if instance is None:
        try:
            instance = parts.db.instance_get(instance_uuid, faults=False)
        except exception.InstanceNotFound:
            return
    if recorded(instance):
        parts.db.instance_update(
            instance_uuid, {},
            system_metadata={names.SHELVED_MEMORY_STATE: None})


# -- direct kernel boot ---------------------------------------------------

def _fetch(parts, image_id: str, dest: str) -> None:
    if os.path.isfile(dest):
        return
    tmp = dest + '.part'
    paths.remove_quietly(tmp)
    try:
        parts.image_service.download(image_id, tmp)
        os.chmod(tmp, paths.FILE_MODE)
        os.rename(tmp, dest)   # complete or absent, for a resumed flow
    finally:
        paths.remove_quietly(tmp)


def kernel_boot(parts, instance: models.Instance
                ) -> domain_xml.KernelBoot | None:
    """The instance's direct kernel boot, its files in place; None when its
    image has no ``kernel_id``."""
    sysmeta = instance.system_metadata
    kernel_id = sysmeta.get(names.SYSMETA_IMAGE_KERNEL_ID)
    if not kernel_id:
        return None
    storage = parts.storage
    inst_dir = paths.ensure_dir(storage.instances_path,
                                storage.instance_dir(instance.uuid))
    kernel = paths.confine(storage.instances_path,
                           os.path.join(inst_dir, KERNEL_NAME))
    _fetch(parts, kernel_id, kernel)
    ramdisk = None
    ramdisk_id = sysmeta.get(names.SYSMETA_IMAGE_RAMDISK_ID)
    if ramdisk_id:
        ramdisk = paths.confine(storage.instances_path,
                                os.path.join(inst_dir, RAMDISK_NAME))
        _fetch(parts, ramdisk_id, ramdisk)
    return domain_xml.KernelBoot(
        kernel, ramdisk,
        sysmeta.get(names.SYSMETA_IMAGE_OS_COMMAND_LINE) or None)
