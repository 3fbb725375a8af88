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
* on delete, the attachment is deleted, then the volume if
  ``delete_on_termination``.

No snapshot, no image and no retained disk ever exist for such an instance;
the offload modes (partial, full) and their escalations do not apply.

The compute host's connector is os-brick-like (host, ip, initiator,
platform, os_type, multipath) but built from configuration: this service
does not connect block devices itself. The domain's disk is the device
os-brick's iSCSI connector would create (``/dev/disk/by-path/...``); a
connection that names no target (Cinder's fake driver) gets a placeholder
device name, which only libvirt's test driver (``test:///default``)
accepts.
"""

import collections

from oslo_log import log as logging

from lifecycle import exception
from lifecycle.conf import CONF
from lifecycle import volume

LOG = logging.getLogger(__name__)

ROOT_VOLUME_ID = 'root_volume_id'
ROOT_ATTACHMENT_ID = 'root_attachment_id'
DELETE_ON_TERMINATION = 'root_volume_delete_on_termination'
STALE_ATTACHMENT_ID = 'root_stale_attachment_id'

VolumeDisk = collections.namedtuple('VolumeDisk', ['path', 'format'])


def root_volume_id(instance) -> str | None:
    return instance.system_metadata.get(ROOT_VOLUME_ID) or None


def is_volume_backed(instance) -> bool:
    return root_volume_id(instance) is not None


def delete_on_termination(instance) -> bool:
    return instance.system_metadata.get(DELETE_ON_TERMINATION) == 'true'


def connector(host: str) -> dict:
    """What this compute host tells Cinder about itself (os-brick's
    ``get_connector_properties`` keys)."""
    return {'host': host, 'ip': CONF.cinder.connector_ip,
            'initiator': '%s:%s' % (CONF.cinder.iscsi_initiator_prefix,
                                    host),
            'platform': 'x86_64', 'os_type': 'linux', 'multipath': False}


def translate_connection_info(attachment: dict) -> dict:
    """Cinder's attachment API gives ``connection_info`` flattened; Nova's
    ``_translate_attachment_ref`` shape: ``driver_volume_type`` and
    ``data``."""
    flat = dict(attachment.get('connection_info') or {})
    flat.pop('attachment_id', None)
    driver_volume_type = flat.pop('driver_volume_type', None)
    return {'driver_volume_type': driver_volume_type, 'data': flat}


def device_path(connection_info: dict, volume_id: str) -> str:
    """The host block device of a connection, as os-brick names it."""
    kind = connection_info.get('driver_volume_type')
    data = connection_info.get('data') or {}
    if kind != 'iscsi':
        raise volume.InvalidVolume(
            reason='volume %s is exported as %r; this service attaches '
                   'iSCSI volumes only' % (volume_id, kind))
    portal, iqn = data.get('target_portal'), data.get('target_iqn')
    if portal and iqn:
        return '/dev/disk/by-path/ip-%s-iscsi-%s-lun-%s' % (
            portal, iqn, data.get('target_lun', 0))
    # No target (Cinder's fake driver): nothing a real host could open.
    return '/dev/disk/by-id/lifecycle-volume-%s' % volume_id


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
            raise volume.VolumeAttachmentNotFound(attachment_id='(none)')
        attachment = self.volume_api.attachment_update(attachment_id,
                                                       connector(self.host))
        self.volume_api.attachment_complete(attachment_id)
        path = device_path(translate_connection_info(attachment), volume_id)
        LOG.info('Volume %s of instance %s attached to %s (attachment %s, '
                 'device %s)', volume_id, instance.uuid, self.host,
                 attachment_id, path)
        return VolumeDisk(path, 'raw')

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
        new = self.volume_api.attachment_create(volume_id,
                                                instance.uuid)['id']
        try:
            self.db.instance_update(
                instance.uuid, {}, expected_task_state=expected_task_state,
                action=action,
                system_metadata={ROOT_ATTACHMENT_ID: new,
                                 STALE_ATTACHMENT_ID: old})
        except Exception:
            # Not recorded: nobody would ever delete it.
            self.volume_api.attachment_delete(new)
            raise
        if old:
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
