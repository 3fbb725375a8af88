"""What a compute host's flows work with: the parts of one host.

Every task of ``compute/flows.py`` gets a :class:`HostParts` in its
constructor (through the :class:`FlowRun` of its flow), never the
:class:`~lifecycle.compute.manager.ComputeManager`: the database, the
libvirt driver, the group's storage backend, the image service and the
root volumes of this host, and the few steps several tasks share. The
manager's endpoints only lock the instance, notify and run the flow.
"""

import dataclasses

from oslo_log import log as logging

from lifecycle import exception
from lifecycle import names
from lifecycle import states
from lifecycle.compute import hibernate
from lifecycle.compute import volumes
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import models
from lifecycle.virt import domain_xml

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class HostParts:
    """The collaborators of one compute host's flows (``driver`` None: a
    flow that needs no hypervisor, such as the full offload run by
    ``lifecycle-manage``)."""

    host: str
    db: db_api.Database
    driver: object
    storage: object
    image_service: object
    root_volumes: volumes.RootVolume | None

    def power_off(self, instance_uuid: str, clean_shutdown: bool) -> None:
        # The driver logs when a guest ignores the clean shutdown request.
        self.driver.power_off(
            instance_uuid, CONF.shutdown_timeout if clean_shutdown else 0)

    def domain_spec(self, instance: models.Instance,
                    disk) -> domain_xml.DomainSpec:
        return domain_xml.DomainSpec(
            uuid=instance.uuid, display_name=instance.display_name,
            vcpus=instance.vcpus, memory_mb=instance.memory_mb,
            disk_path=disk.path, disk_format=disk.format, host=self.host,
            user_id=instance.user_id, project_id=instance.project_id,
            flavor_name=instance.flavor_name,
            boot=hibernate.kernel_boot(self, instance))

    # -- root disks ---------------------------------------------------------

    def root_disk(self, instance: models.Instance):
        """The root disk of a build (or of a shelved instance whose domain
        is defined again): its volume attached here, or a disk from its
        image."""
        if volumes.is_volume_backed(instance):
            return self.root_volumes.attach(instance)
        return self.disk_from_image(instance, instance.image_ref)

    def unshelve_disk(self, instance: models.Instance):
        """The root disk of an unshelve: its volume attached here, the
        retained disk, or a new disk from the shelved image (after a full
        offload)."""
        if volumes.is_volume_backed(instance):
            return self.root_volumes.attach(instance)
        if instance.system_metadata.get(names.SHELVED_DISK):
            return self.storage.disk_info(instance.uuid)
        image_id = instance.system_metadata.get(names.SHELVED_IMAGE_ID)
        if not image_id:
            raise exception.RetainedDiskNotFound(
                instance_uuid=instance.uuid, path='(no disk and no image)')
        return self.disk_from_image(instance, image_id)

    def disk_from_image(self, instance: models.Instance, image_id: str):
        """The image's base in the group's storage (once per group), then
        the instance's root disk on it."""
        self.storage.ensure_base(
            image_id, lambda path: self.image_service.download(image_id, path))
        return self.storage.create_root_disk(instance.uuid, image_id,
                                             instance.root_gb)

    def reserve_again(self, instance_uuid: str) -> None:
        """After a failed unshelve here, the volume goes back to a reserved
        attachment without connector, ready for the next host."""
        try:
            self.root_volumes.reserve(
                self.db.instance_get(instance_uuid, faults=False),
                expected_task_state=[states.UNSHELVING, states.SPAWNING],
                action='unshelve')
        except Exception:
            LOG.exception('Could not reserve the root volume of instance %s '
                          'again after a failed unshelve on %s',
                          instance_uuid, self.host)

    # -- shelved images -----------------------------------------------------

    def delete_shelved_image(self, instance_uuid: str, image_id: str) -> None:
        # The instance runs from its new disk already: a failure here only
        # leaves an image for ``lifecycle-manage disks cleanup``.
        try:
            if not self.image_service.delete(image_id):
                LOG.warning('Shelved image %s of instance %s was already '
                            'gone', image_id, instance_uuid)
        except Exception:
            LOG.warning('Shelved image %s of instance %s could not be '
                        'deleted; the cleanup command will find it',
                        image_id, instance_uuid, exc_info=True)

    # -- records ------------------------------------------------------------

    def finish_unshelve(self, instance_uuid: str,
                        task_state: str) -> models.Instance:
        """Record the unshelve, only while this host still holds the claim
        in ``task_state``: a claim taken back means this guest must not
        run."""
        try:
            return self.db.instance_update(
                instance_uuid,
                {'vm_state': states.ACTIVE, 'task_state': None,
                 'power_state': states.RUNNING, 'host': self.host},
                expected_task_state=task_state,
                expected_claimed_host=self.host, action='unshelve',
                system_metadata=dict.fromkeys(names.SHELVED_KEYS),
                faults=False)
        except exception.InstanceInvalidState:
            LOG.warning('Unshelve of instance %s on %s was given up by the '
                        'conductor; destroying the guest started here',
                        instance_uuid, self.host)
            self.driver.undefine(instance_uuid)
            raise


@dataclasses.dataclass
class FlowRun:
    """One run of a compute flow: the host's parts, the run's copy of its
    instance, and the row the flow's last update committed (for the
    endpoint's ``.end`` notification; a later read may show the next
    request already). Lives in memory for this run only; nothing of it is
    persisted.

    ``instance`` is the row as this run last read or wrote it, as Nova's
    compute manager carries one instance object through an operation and
    its ``save`` refreshes it: the endpoint hands over the row it read
    under the instance's lock, and a task that leaves the row as it found
    it, or refreshes it from its own update, passes it on to the next
    (see ``compute/flows.py``). What must not race is decided by the
    conditional updates, never by this copy."""

    parts: HostParts
    committed: models.Instance | None = None
    instance: models.Instance | None = None
