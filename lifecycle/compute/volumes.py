"""The root volume of a volume-backed instance: the Cinder steps of spawn,
shelve offload, unshelve and delete.

A volume-backed instance's root disk is a Cinder volume; the instance's
system metadata names it (``root_volume_id``), its current attachment
(``root_attachment_id``) and whether deleting the instance deletes the
volume (``root_volume_delete_on_termination``, ``true``/``false``). The
attachment goes through Nova's new-style (3.27+) states:

* created ``reserved`` without connector by the API at server create (so a
  second server cannot take the volume meanwhile);
* on spawn and unshelve, updated with the compute host's connector and
  completed: ``attached`` to that host;
* on shelve offload, replaced by a new ``reserved`` one without connector:
  the new one is created and durably recorded first, then the old one is
  deleted (Nova's order: the volume is never left without an attachment of
  the instance, so nothing else can take it while it is offloaded). The
  old id is kept under ``root_stale_attachment_id`` until its delete
  succeeded, so a crash in between leaves it for the next delete to find;
* after an unshelve (or spawn) that failed once Cinder had exported the
  volume here (an export this host cannot use), replaced the same way,
  except that the never-completed attachment is deleted first: Cinder
  takes no new attachment of a volume that is ``attaching``;
* on delete, the attachment is deleted, then the volume if
  ``delete_on_termination``.

No snapshot, no image and no retained disk ever exist for such an instance;
the offload modes (partial, full) and their escalations do not apply.

The compute host's connector is os-brick's, and the export Cinder answers
with becomes the domain's root disk in :mod:`lifecycle.volume.connector`:
``rbd`` volumes as libvirt network disks (nothing on the host), iSCSI ones
as host block devices connected by os-brick (through privsep). Order, as
Nova's: the attachment gets the connector, the volume is connected, then
the attachment is completed; the guest is gone before a volume is
disconnected, and it is disconnected before its attachment is replaced or
deleted.
"""

from oslo_log import log as logging

from lifecycle import exception
from lifecycle.conf import CONF
from lifecycle.volume import connector

LOG = logging.getLogger(__name__)

ROOT_VOLUME_ID = 'root_volume_id'
ROOT_ATTACHMENT_ID = 'root_attachment_id'
DELETE_ON_TERMINATION = 'root_volume_delete_on_termination'
STALE_ATTACHMENT_ID = 'root_stale_attachment_id'
# Cinder's status of an attachment that has a connector but was never
# completed.
ATTACHING = 'attaching'

VolumeDisk = connector.VolumeDisk


def root_volume_id(instance) -> str | None:
    return instance.system_metadata.get(ROOT_VOLUME_ID) or None


def is_volume_backed(instance) -> bool:
    return root_volume_id(instance) is not None


def delete_on_termination(instance) -> bool:
    return instance.system_metadata.get(DELETE_ON_TERMINATION) == 'true'


def translate_connection_info(attachment: dict) -> dict:
    """Cinder's attachment API gives ``connection_info`` flattened; Nova's
    ``_translate_attachment_ref`` shape: ``driver_volume_type`` and
    ``data``."""
    flat = dict(attachment.get('connection_info') or {})
    flat.pop('attachment_id', None)
    driver_volume_type = flat.pop('driver_volume_type', None)
    return {'driver_volume_type': driver_volume_type, 'data': flat}


class RootVolume:
    """The Cinder steps the compute manager takes for ``host``."""

    def __init__(self, db, volume_api, host: str) -> None:
        self.db = db
        self.volume_api = volume_api
        self.host = host

    def attach(self, instance) -> VolumeDisk:
        """Export the root volume to this host: the instance's (reserved)
        attachment gets this host's connector and is completed."""
        volume_id = root_volume_id(instance)
        attachment_id = instance.system_metadata.get(ROOT_ATTACHMENT_ID)
        if not attachment_id:
            raise exception.VolumeAttachmentNotFound(attachment_id='(none)')
        attachment = self.volume_api.attachment_update(
            attachment_id, connector.connector_properties(self.host))
        # Connected before completed (Nova's order): a volume this host
        # cannot use is never marked attached; the flow's revert reserves
        # it again without connector.
        disk = connector.connect(translate_connection_info(attachment),
                                 volume_id, self.host)
        self.volume_api.attachment_complete(attachment_id)
        LOG.info('Volume %s of instance %s attached to %s (attachment %s, '
                 'disk %s)', volume_id, instance.uuid, self.host,
                 attachment_id, disk.path)
        return disk

    def _attachment(self, attachment_id: str | None) -> dict | None:
        if not attachment_id:
            return None
        try:
            return self.volume_api.attachment_get(attachment_id)
        except exception.VolumeAttachmentNotFound:
            return None

    def _disconnect(self, instance, attachment: dict | None) -> None:
        if attachment is None:
            return
        info = translate_connection_info(attachment)
        if info['driver_volume_type']:
            connector.disconnect(info, root_volume_id(instance), self.host)

    def disconnect(self, instance, attachment_id: str | None) -> None:
        """Disconnect what ``attachment_id`` exported to this host (the
        guest is gone); nothing for a reserved attachment without
        connection, or one that is gone."""
        self._disconnect(instance, self._attachment(attachment_id))

    def reserve(self, instance, *, expected_task_state: str | None,
                action: str) -> str:
        """Replace the instance's attachment by a new reserved one without
        connector; returns its id. The guest must be gone already."""
        volume_id = root_volume_id(instance)
        stale = instance.system_metadata.get(STALE_ATTACHMENT_ID)
        if stale:
            # Left by an earlier attempt that failed after recording.
            self.volume_api.attachment_delete(stale)
        old = instance.system_metadata.get(ROOT_ATTACHMENT_ID)
        attachment = self._attachment(old)
        self._disconnect(instance, attachment)
        old_gone = False
        if attachment is not None and attachment.get('status') == ATTACHING:
            # An attach that failed after Cinder exported the volume (this
            # host could not use the export): the volume is "attaching",
            # and while it is, Cinder refuses any new attachment of it
            # (only "available" volumes, or "in-use"/"reserved" ones for
            # the same instance, can be reserved). So the failed attachment
            # goes first, which also ends the export to this host; the
            # volume is "available" until the new reservation below. The
            # instance stops naming it first (Cinder may ask the compute
            # API whether the instance still uses it), keeping it as stale
            # so that a failure from here on leaves it for the next
            # reserve or delete.
            self.db.instance_update(
                instance.uuid, {}, expected_task_state=expected_task_state,
                action=action,
                system_metadata={ROOT_ATTACHMENT_ID: None,
                                 STALE_ATTACHMENT_ID: old})
            self.volume_api.attachment_delete(old)
            old_gone = True
            LOG.info('Attachment %s of volume %s (instance %s) never '
                     'completed on %s; deleted before reserving again',
                     old, volume_id, instance.uuid, self.host)
        new = self.volume_api.attachment_create(volume_id,
                                                instance.uuid)['id']
        try:
            self.db.instance_update(
                instance.uuid, {}, expected_task_state=expected_task_state,
                action=action,
                system_metadata={ROOT_ATTACHMENT_ID: new,
                                 STALE_ATTACHMENT_ID: None if old_gone
                                 else old})
        except Exception:
            # Not recorded: nobody would ever delete it.
            self.volume_api.attachment_delete(new)
            raise
        if old and not old_gone:
            self.volume_api.attachment_delete(old)
            self.db.instance_update(
                instance.uuid, {}, expected_task_state=expected_task_state,
                action=action, system_metadata={STALE_ATTACHMENT_ID: None})
        LOG.info('Volume %s of instance %s reserved without connector '
                 '(attachment %s replaces %s)', volume_id, instance.uuid,
                 new, old)
        return new

    def release(self, instance) -> bool:
        """Delete the instance's attachments, then the volume when
        ``delete_on_termination``; True if the volume was deleted.
        Repeatable: what is already gone is skipped."""
        volume_id = root_volume_id(instance)
        sysmeta = instance.system_metadata
        self.disconnect(instance, sysmeta.get(ROOT_ATTACHMENT_ID))
        for key in (STALE_ATTACHMENT_ID, ROOT_ATTACHMENT_ID):
            attachment_id = sysmeta.get(key)
            if attachment_id and not self.volume_api.attachment_delete(
                    attachment_id):
                LOG.info('Attachment %s of instance %s was already gone',
                         attachment_id, instance.uuid)
        if not delete_on_termination(instance):
            LOG.info('Volume %s of deleted instance %s kept (not '
                     'delete_on_termination)', volume_id, instance.uuid)
            return False
        vol = self.volume_api.wait_settled(volume_id,
                                           CONF.cinder.volume_status_timeout)
        if vol is None:
            return False
        if vol.get('status') not in ('available', 'error'):
            raise exception.Conflict(
                reason='volume %s of instance %s is %s, not deleted'
                       % (volume_id, instance.uuid, vol.get('status')))
        deleted = self.volume_api.delete(volume_id)
        LOG.info('Volume %s of deleted instance %s deleted '
                 '(delete_on_termination)', volume_id, instance.uuid)
        return deleted
