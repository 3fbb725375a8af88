"""The storage group's periodic work, run by every host of the group inside
Nova's image-cache pass (``[image_cache] manager_interval``):

* **orphans** -- a server deleted while SHELVED_OFFLOADED is deleted by
  Nova's API without calling any compute host, so its retained disk stays.
  A marked disk (a marker file in the instance directory, see
  :mod:`lifecycle.nova.storage`; RBD image metadata on the clone, see
  :mod:`lifecycle.nova.rbd_store`) whose instance is deleted in, or absent
  from, the cell database is removed (for RBD every ``<uuid>_*`` image, as
  Nova's own delete does). A disk whose instance still exists is never
  removed here.
* **escalation** -- a retained disk older than ``[partial_offload]
  retained_disk_max_age``, or while the group's storage is above
  ``storage_high_watermark`` (oldest first, down to
  ``storage_low_watermark``; the usage of the file system holding the
  shared instances_path, or of the Ceph pool), is uploaded to Glance,
  verified, recorded as ``shelved_image_id`` (what stock unshelve
  expects), and only then removed. The instance's ``task_state`` is held at
  ``shelving_image_uploading`` meanwhile (a compare-and-swap on the
  database row), so no unshelve and no other host's pass runs on it.
"""

import hashlib
import os
import tempfile

from nova.compute import task_states
from nova.compute import utils as compute_utils
from nova.compute import vm_states
from nova import conf as nova_conf
from nova import context as nova_context
from nova import exception
from nova import objects
from nova.virt import images
from nova.virt.libvirt import imagebackend
from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import names

CONF = nova_conf.CONF
LOG = logging.getLogger(__name__)

_CHUNK = 4 * 1024 * 1024


def backing_file(path: str) -> str | None:
    """The backing file of the qcow2 image at ``path`` (absolute), or None."""
    info = images.qemu_img_info(path, format='qcow2')
    backing = info.backing_file
    if backing and not os.path.isabs(backing):
        backing = os.path.join(os.path.dirname(path), backing)
    return backing


def path_exists(path: str) -> bool:
    return os.path.exists(path)


def retained_instances(context) -> list:
    """Every non-deleted SHELVED_OFFLOADED instance with a retained disk."""
    found = objects.InstanceList.get_by_filters(
        context, {'deleted': False, 'vm_state': vm_states.SHELVED_OFFLOADED},
        expected_attrs=['system_metadata'])
    return [inst for inst in found
            if inst.system_metadata.get(names.SHELVED_DISK)]


def instance_state(context, instance_uuid: str):
    """(instance or None, exists): ``exists`` is False only when the cell
    database says the instance is deleted or has never been there."""
    deleted_ctx = context.elevated(read_deleted='yes')
    try:
        inst = objects.Instance.get_by_uuid(
            deleted_ctx, instance_uuid, expected_attrs=['system_metadata'])
    except exception.InstanceNotFound:
        return None, False
    return inst, not inst.deleted


def instance_exists_in(context):
    """``exists(uuid)`` against the cell database of ``context``."""
    def exists(instance_uuid: str) -> bool:
        return instance_state(context, instance_uuid)[1]
    return exists


def orphans(store, exists, group: str | None = None) -> dict[str, dict]:
    """{uuid: marker} of the marked disks of ``store`` (a
    :class:`~lifecycle.nova.storage.FileStore` or
    :class:`~lifecycle.nova.rbd_store.RbdStore`) whose instance no longer
    exists: ``exists(uuid)`` is False. With ``group``, only the disks
    retained by that storage group. A lookup that fails raises, so
    nothing is then taken for an orphan."""
    result = {}
    for instance_uuid, marker in store.retained().items():
        if group is not None and marker.get('storage_group') != group:
            continue
        if not exists(instance_uuid):
            result[instance_uuid] = marker
    return result


def remove_orphans(store, exists, group: str | None = None) -> list[str]:
    removed = []
    for instance_uuid in orphans(store, exists, group):
        # Checked again right before removing: only a deleted instance's
        # disk goes.
        if exists(instance_uuid):
            continue
        try:
            store.remove(instance_uuid)
        except FileNotFoundError:
            continue  # another host of the group was first
        except Exception:  # logged; the next one
            LOG.exception('Could not remove the retained disk %s of '
                          'deleted instance %s',
                          store.describe(instance_uuid), instance_uuid)
            continue
        removed.append(instance_uuid)
        LOG.info('Removed the retained disk %s of deleted instance %s',
                 store.describe(instance_uuid), instance_uuid)
    return removed


def _age_seconds(instance) -> float:
    shelved_at = instance.system_metadata.get(names.SHELVED_AT)
    if not shelved_at:
        return 0.0
    try:
        when = timeutils.parse_isotime(shelved_at)
    except ValueError:
        return 0.0
    return timeutils.delta_seconds(timeutils.normalize_time(when),
                                   timeutils.utcnow())


def candidates(driver, context) -> list:
    """The group's retained instances to escalate, by age then by
    watermark, oldest first."""
    mine = [inst for inst in retained_instances(context)
            if inst.system_metadata.get(names.SHELVED_STORAGE_GROUP) ==
            driver.storage_group and inst.task_state is None]
    mine.sort(key=_age_seconds, reverse=True)
    opts = CONF.partial_offload
    chosen = []
    if opts.retained_disk_max_age:
        chosen = [inst for inst in mine
                  if _age_seconds(inst) >= opts.retained_disk_max_age]
    if opts.storage_high_watermark and driver.store is not None:
        chosen += _over_watermark(driver.store, mine, chosen)
    return chosen


def _over_watermark(store, retained: list, chosen: list) -> list:
    """The oldest of ``retained`` (not already ``chosen``) whose removal
    brings the group's storage usage from above the high watermark down
    to the low one."""
    opts = CONF.partial_offload
    try:
        used, capacity = store.usage()
    except Exception:  # no figures: no escalation by usage
        LOG.warning('Usage of the storage group\'s storage unknown; the '
                    'storage watermarks are not applied', exc_info=True)
        return []
    if capacity <= 0:
        return []
    high = opts.storage_high_watermark * capacity / 100.0
    low = (opts.storage_low_watermark or
           opts.storage_high_watermark) * capacity / 100.0
    LOG.debug('Storage group usage %d of %d bytes (high watermark %d)',
              used, capacity, high)
    if used <= high:
        return []
    # Disks already chosen by age are about to go.
    used -= sum(store.disk_bytes(inst.uuid) for inst in chosen)
    more = []
    for inst in retained:
        if used <= low:
            break
        if inst in chosen:
            continue
        more.append(inst)
        used -= store.disk_bytes(inst.uuid)
    return more


def _file_digest(path: str, algo: str) -> str:
    digest = hashlib.new(algo)
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


# ``driver`` is the plugin's subclass of Nova's LibvirtDriver, which keeps
# its image API and snapshot metadata private (``_image_api``,
# ``_create_snapshot_metadata``): used as Nova's own snapshot() uses them,
# hence the SLF001 exemptions below.
def _verify(driver, context, image_id: str, path: str) -> None:
    """Raise unless Glance holds exactly the bytes of ``path``."""
    image = driver._image_api.get(context, image_id)  # noqa: SLF001
    if image.get('status') not in (None, 'active'):
        raise exception.ImageUnacceptable(
            image_id=image_id, reason='status %s' % image.get('status'))
    algo, value = image.get('os_hash_algo'), image.get('os_hash_value')
    if not (algo and value):
        algo, value = 'md5', image.get('checksum')
    if value:
        if _file_digest(path, algo) != value:
            raise exception.ImageUnacceptable(
                image_id=image_id, reason='%s mismatch' % algo)
        return
    # An image service that reports no hash: read the data back.
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(path)) as copy:
        driver._image_api.download(context, image_id, dest_path=copy.name)  # noqa: SLF001
        if _file_digest(copy.name, 'sha256') != _file_digest(path,
                                                              'sha256'):
            raise exception.ImageUnacceptable(
                image_id=image_id, reason='data read back differs')


def escalate(driver, context, instance) -> str:
    """Full offload of a retained disk; returns the image id.

    Order: hold the instance (task_state), upload, verify, record
    ``shelved_image_id`` and drop the retained-disk keys (durable), only
    then remove the disk. A failure before the record deletes the image
    and releases the instance; the disk is untouched.
    """
    location = instance.system_metadata[names.SHELVED_DISK]
    if driver.retained_location(instance) != location:
        # Another pool or images type here: exporting would read another
        # disk (or none).
        raise exception.StorageError(
            reason='retained disk %s is not where this host keeps disks '
                   '(%s)' % (location, driver.retained_location(instance)))
    instance.task_state = task_states.SHELVING_IMAGE_UPLOADING
    instance.save(expected_task_state=[None])
    image_id = None
    try:
        backend = driver.root_backend(instance)
        # As Nova's own snapshot(): the configured format, else the disk's.
        fmt = CONF.libvirt.snapshot_image_format or (
            'qcow2' if isinstance(backend, imagebackend.Qcow2) else 'raw')
        name = '%s-shelved' % instance.display_name
        image_id = compute_utils.create_image(
            context, instance, name, 'snapshot', driver._image_api)['id']  # noqa: SLF001
        metadata = driver._create_snapshot_metadata(  # noqa: SLF001
            instance.image_meta, instance, fmt, name)
        snap_dir = CONF.libvirt.snapshots_directory
        os.makedirs(snap_dir, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=snap_dir) as tmp:
            out = os.path.join(tmp, 'disk')
            backend.snapshot_extract(out, fmt)
            with open(out, 'rb') as data:
                driver._image_api.update(context, image_id, metadata, data)  # noqa: SLF001
            _verify(driver, context, image_id, out)
        sm = instance.system_metadata
        sm[names.SHELVED_IMAGE_ID] = image_id
        sm.pop(names.SHELVED_DISK, None)
        sm.pop(names.SHELVED_STORAGE_GROUP, None)
        instance.task_state = None
        instance.save(expected_task_state=[
            task_states.SHELVING_IMAGE_UPLOADING])
    except Exception:
        LOG.exception('Escalation to a full offload failed; the retained '
                      'disk stays', instance=instance)
        if image_id:
            try:
                driver._image_api.delete(context, image_id)  # noqa: SLF001
            except exception.ImageNotFound:
                pass
        instance.task_state = None
        instance.save()
        raise
    # Recorded above. The marker goes with the disk: should the removal
    # fail, the marked disk is removed once its server is deleted.
    driver.store.remove(instance.uuid)
    LOG.info('Retained disk %s offloaded to image %s and removed', location,
             image_id, instance=instance)
    return image_id


def run(driver, context) -> None:
    ctx = context if context.is_admin else nova_context.get_admin_context()
    if CONF.partial_offload.cleanup_deleted and driver.store is not None:
        # Only this group's disks: a compute host sees its own cell's
        # database, and another group sharing the pool or the file system
        # may be in another cell, where its instances do exist.
        remove_orphans(driver.store, instance_exists_in(ctx),
                       driver.storage_group)
    for inst in candidates(driver, ctx):
        try:
            escalate(driver, ctx, inst)
        except exception.UnexpectedTaskStateError:
            continue  # an unshelve or another host got there first
        except Exception:  # logged; try the next one
            continue
