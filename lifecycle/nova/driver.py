"""PartialOffloadLibvirtDriver: Nova's libvirt driver that keeps a shelved
server's root disk on its storage group.

Loaded by Nova as ``compute_driver =
partial_offload.PartialOffloadLibvirtDriver`` (``lifecycle.nova`` aliases
this module as ``nova.virt.partial_offload``). On a host with
``[partial_offload] storage_group`` set, whose disks are on storage the
group shares (see :mod:`lifecycle.nova.storage`), an image-booted server:

* **shelve** -- ``snapshot()`` uploads nothing: the root disk stays where it
  is and the empty ``<name>-shelved`` image Nova's API created is deleted;
* **shelve offload** -- ``destroy()`` undefines the guest but keeps the
  disks; the system metadata names the retained disk (``shelved_disk``,
  ``shelved_storage_group``, ``shelved_host``) and ``shelved_image_id`` is
  dropped, so Nova's conductor passes no image and the compute manager
  spawns from the original image reference;
* **unshelve** -- ``spawn()`` on a host of the same group checks that it sees
  the disk (and its backing file), then runs it: nothing is fetched, the
  qcow2 overlay is not rebased, an RBD clone is not flattened. A host that
  does not see it fails the unshelve (an instance fault says why) before
  touching anything.

Everything else -- hosts without a storage group, volume-backed servers,
user snapshots -- is the parent class unchanged. The periodic image-cache
pass also keeps the bases of retained disks, removes the disks of servers
deleted while offloaded and escalates old disks to a full offload
(:mod:`lifecycle.nova.periodic`).

What this relies on inside Nova (checked by the tests/nova tier on every
supported release): the call order of ``ComputeManager._shelve_instance``,
``_shelve_offload_instance`` and ``_unshelve_instance``;
``LibvirtDriver._try_fetch_image_cache`` and
``_needs_rebase_original_qcow2_image``; the image-cache manager's instance
list.
"""

import os

from nova.compute import task_states
from nova.compute import vm_states
from nova import conf as nova_conf
from nova import exception
from nova.i18n import _
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import imagebackend
from oslo_log import log as logging

from lifecycle import names
from lifecycle.nova import conf
from lifecycle.nova import periodic
from lifecycle.nova import rbd_store
from lifecycle.nova import storage

CONF = nova_conf.CONF
conf.register_opts(CONF)
LOG = logging.getLogger(__name__)

#: The keys this driver adds to Nova's own shelved_* keys.
OWN_KEYS = (names.SHELVED_STORAGE_GROUP, names.SHELVED_DISK)


class PartialOffloadLibvirtDriver(libvirt_driver.LibvirtDriver):
    """LibvirtDriver with partial offload on a storage group."""

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only=read_only)
        # Read once: several compute services in one process (Nova's
        # functional tests) each keep their own group.
        self.storage_group = CONF.partial_offload.storage_group or None
        self.files = storage.FileStore(CONF.instances_path)
        self.host_name = CONF.host  # the manager's host, set in init_host

    def init_host(self, host):
        super().init_host(host)
        self.host_name = host
        if self.storage_group and self._file_backed():
            self.files.announce(host, self.storage_group)
        LOG.info('Partial offload: storage group %s, images_type %s',
                 self.storage_group or '(none: stock shelve)',
                 CONF.libvirt.images_type)

    # --- what is retained -------------------------------------------------

    def root_backend(self, instance):
        """Nova's image backend of the instance's root disk."""
        return self.image_backend.by_name(instance, storage.ROOT_DISK)

    @property
    def store(self):
        """Where this host's retained disks are: the shared instances_path
        (:class:`storage.FileStore`), the Ceph pool
        (:class:`rbd_store.RbdStore`), or None (other images types)."""
        if CONF.libvirt.images_type == 'rbd':
            # Cheap (no connection), and follows images_rbd_pool as Nova's
            # own Rbd backend does, which reads it on every use.
            return rbd_store.RbdStore()
        return self.files if self._file_backed() else None

    @staticmethod
    def _file_backed():
        return CONF.libvirt.images_type in ('default', 'qcow2', 'flat',
                                            'raw')

    def retained_location(self, instance):
        """What ``shelved_disk`` records for the instance's root disk here
        (None: an images type whose disk is not retained)."""
        backend = self.root_backend(instance)
        if isinstance(backend, imagebackend.Rbd):
            return storage.rbd_location(backend.driver.pool, instance.uuid)
        if isinstance(backend, (imagebackend.Qcow2, imagebackend.Flat)):
            return storage.file_location(instance.uuid)
        return None

    def retains(self, instance) -> bool:
        """True when shelving ``instance`` here keeps its root disk."""
        if not self.storage_group or not instance.image_ref:
            return False
        if self.retained_location(instance) is None:
            return False  # lvm, ploop: stock
        if self._file_backed() and not self.files.shared_with_group(
                self.host_name, self.storage_group):
            LOG.info('No other host of storage group %s sees %s: shelving '
                     'with a full snapshot', self.storage_group,
                     CONF.instances_path, instance=instance)
            return False
        return True

    @staticmethod
    def _retained_unshelve(instance):
        return (instance.vm_state == vm_states.SHELVED_OFFLOADED and
                bool(instance.system_metadata.get(names.SHELVED_DISK)))

    # --- shelve -----------------------------------------------------------

    def snapshot(self, context, instance, image_id, update_task_state):
        if instance.task_state != task_states.SHELVING or not self.retains(
                instance):
            return super().snapshot(context, instance, image_id,
                                    update_task_state)
        # Decided once, here: destroy() keeps the disks because these keys
        # are set, whatever the configuration says by then. The manager
        # saves them with its shelved_* keys right after this call.
        instance.system_metadata[names.SHELVED_STORAGE_GROUP] = (
            self.storage_group)
        instance.system_metadata[names.SHELVED_DISK] = self.retained_location(
            instance)
        LOG.info('Shelve keeps the root disk on storage group %s',
                 self.storage_group, instance=instance)
        try:
            self._image_api.delete(context, image_id)
        except exception.ImageNotFound:
            pass

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        super().power_on(context, instance, network_info,
                         block_device_info=block_device_info,
                         accel_info=accel_info, share_info=share_info)
        if instance.vm_state == vm_states.SHELVED:
            # Unshelve before the offload: the manager's start_instance
            # drops Nova's shelved_* keys and saves; drop ours with them.
            for key in OWN_KEYS:
                instance.system_metadata.pop(key, None)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        if not (instance.vm_state == vm_states.SHELVED and
                instance.task_state == task_states.SHELVING_OFFLOADING and
                instance.system_metadata.get(names.SHELVED_DISK)):
            return super().destroy(context, instance, network_info,
                                   block_device_info=block_device_info,
                                   destroy_disks=destroy_disks,
                                   destroy_secrets=destroy_secrets)
        super().destroy(context, instance, network_info,
                        block_device_info=block_device_info,
                        destroy_disks=False, destroy_secrets=destroy_secrets)
        location = instance.system_metadata[names.SHELVED_DISK]
        # The marker is what lets the periodic pass find the disk once Nova
        # deletes the server without calling any compute host.
        self.store.write_marker(
            instance.uuid,
            instance.system_metadata[names.SHELVED_STORAGE_GROUP],
            self.host_name, location)
        # No shelved_image_id: the conductor then passes no image and the
        # manager spawns from image_ref, the original image. Saved by the
        # manager's next instance.save().
        instance.system_metadata.pop(names.SHELVED_IMAGE_ID, None)
        instance.system_metadata[names.SHELVED_HOST] = self.host_name
        LOG.info('Shelve offload kept the root disk %s', location,
                 instance=instance)

    # --- unshelve ---------------------------------------------------------

    def _check_retained_disk(self, instance):
        """Raise UnshelveException, changing nothing, unless this host can
        run the retained disk."""
        sm = instance.system_metadata
        group = sm.get(names.SHELVED_STORAGE_GROUP)
        location = sm[names.SHELVED_DISK]
        if group != self.storage_group:
            reason = _('the root disk is retained on storage group %(want)s '
                       'and host %(host)s is in %(have)s') % {
                'want': group, 'host': self.host_name,
                'have': self.storage_group or 'no storage group'}
            raise exception.UnshelveException(instance_id=instance.uuid,
                                              reason=reason)
        if not location.startswith('rbd:'):
            # Checked on the path first: building Nova's image backend
            # object writes disk.info, creating the instance directory.
            if not self._file_backed() or not os.path.exists(
                    self.files.disk_path(location)):
                reason = _('host %(host)s does not see the retained root '
                           'disk %(loc)s') % {'host': self.host_name,
                                              'loc': location}
                raise exception.UnshelveException(
                    instance_id=instance.uuid, reason=reason)
        backend = self.root_backend(instance)
        if (self.retained_location(instance) != location or
                not backend.exists()):
            reason = _('host %(host)s does not see the retained root disk '
                       '%(loc)s') % {'host': self.host_name,
                                     'loc': location}
            raise exception.UnshelveException(instance_id=instance.uuid,
                                              reason=reason)
        if isinstance(backend, imagebackend.Qcow2):
            backing = periodic.backing_file(backend.path)
            if backing and not periodic.path_exists(backing):
                reason = _('the backing file %(base)s of the retained root '
                           'disk is missing') % {'base': backing}
                raise exception.UnshelveException(instance_id=instance.uuid,
                                                  reason=reason)

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        retained = self._retained_unshelve(instance)
        if retained:
            self._check_retained_disk(instance)
            LOG.info('Unshelve runs the retained root disk %s',
                     instance.system_metadata[names.SHELVED_DISK],
                     instance=instance)
        super().spawn(context, instance, image_meta, injected_files,
                      admin_password, allocations, network_info=network_info,
                      block_device_info=block_device_info,
                      power_on=power_on, accel_info=accel_info)
        if retained:
            # The manager removes Nova's shelved_* keys and saves.
            for key in OWN_KEYS:
                instance.system_metadata.pop(key, None)
            try:
                self.store.remove_marker(instance.uuid)
            except Exception:  # the guest runs; see below
                # Harmless: a marked disk whose instance exists is never
                # removed, and the next shelve rewrites the marker.
                LOG.warning('Could not remove the retained-disk marker',
                            instance=instance, exc_info=True)

    def _try_fetch_image_cache(self, image, fetch_func, context, filename,
                               image_id, instance, size,
                               fallback_from_host=None):
        if self._retained_unshelve(instance):
            # The disk (and its base) exist, checked above: nothing to
            # fetch, and no flatten of an RBD clone (Nova flattens on every
            # unshelve of an offloaded server, for its snapshot's sake).
            return
        return super()._try_fetch_image_cache(
            image, fetch_func, context, filename, image_id, instance, size,
            fallback_from_host=fallback_from_host)

    def _needs_rebase_original_qcow2_image(self, instance, backend):
        if self._retained_unshelve(instance):
            return False  # the overlay already sits on the original base
        return super()._needs_rebase_original_qcow2_image(instance, backend)

    # --- periodic ---------------------------------------------------------

    def manage_image_cache(self, context, all_instances):
        """Nova's image-cache pass, with the retained disks' instances
        counted as users of their bases; first the group's own periodic
        work (orphans, escalation)."""
        if self.storage_group:
            try:
                periodic.run(self, context)
            except Exception:  # never stop Nova's own pass
                LOG.exception('Partial offload periodic pass failed')
        retained = periodic.retained_instances(context)
        known = {inst.uuid for inst in all_instances}
        extra = [inst for inst in retained if inst.uuid not in known]
        super().manage_image_cache(context, list(all_instances) + extra)
