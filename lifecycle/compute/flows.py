"""The compute host's lifecycle operations as flows of idempotent tasks.

Every task may run twice (a flow resumed after a crash runs the interrupted
task again), so each one first looks at what is already done: a domain that
runs is not started again, a recorded state is not recorded again, a claim
already given back is not given back twice. The order keeps the data-safety
rules of ``compute/manager.py``: what the next step relies on is durable
before that step runs.

Every factory takes the :class:`~lifecycle.compute.parts.FlowRun` of one
run; its tasks get the host's parts (database, driver, storage, images,
root volumes: :class:`~lifecycle.compute.parts.HostParts`) in their
constructor, never the manager. The last update of a flow hands its
committed row back through the run (``FlowRun.committed``), which the
endpoint notifies. The store holds ``instance_uuid`` and, per flow, the few
values the request carried.
"""

import contextlib
import dataclasses
import os
import types

from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import exception
from lifecycle import states
from lifecycle.compute import disk_upload
from lifecycle.compute import hibernate
from lifecycle.compute import parts as parts_mod
from lifecycle.compute import volumes
from lifecycle.db import api as db_api
from lifecycle.flows import engine as flow_engine
from lifecycle import names

LOG = logging.getLogger(__name__)

# The endpoint that carries on from a task_state a flow of this host ends
# in (the request recorded with it, see lifecycle/db/requests.py).
_NEXT_METHOD = {states.SHELVING_OFFLOADING: 'shelve_offload_instance',
                states.SHELVING_IMAGE_UPLOADING: 'offload_retained_disk'}


def next_request(host: str, task_state: str | None
                 ) -> db_api.Request | None:
    """What ``host`` does next in ``task_state`` (None: the task ends),
    as the request recorded with it: a crash before it starts leaves it to
    be sent again."""
    if task_state is None:
        return None
    return db_api.Request.of(task_state, 'compute', _NEXT_METHOD[task_state],
                             None, host=host)


def _disk_record(disk) -> dict:
    """A root disk as the flow stores it (JSON)."""
    if dataclasses.is_dataclass(disk):
        return dataclasses.asdict(disk)
    return dict(disk._asdict())


class _Task(flow_engine.InstanceTask):
    def __init__(self, flow_name: str, run: parts_mod.FlowRun | None,
                 **kwargs) -> None:
        super().__init__(flow_name, run, **kwargs)
        self.run = run
        self.parts = run.parts if run is not None else None
        self.db = self.parts.db if run is not None else None

    def updated(self, instance):
        """``instance`` is the row an update of this task committed (read
        back without its faults, as the run reads it)."""
        self.run.instance = instance
        return instance

    def committed(self, instance) -> None:
        """Hand the row a final update committed to the endpoint, for its
        ``.end`` notification (a later read may show the next request)."""
        self.run.committed = self.updated(instance)


# -- shared steps -------------------------------------------------------------

class PowerOff(_Task):
    NAME = 'power_off'
    KEEPS_INSTANCE = True

    def execute(self, instance_uuid: str, clean_shutdown: bool) -> None:
        self.parts.power_off(instance_uuid, clean_shutdown)


class StartDomain(_Task):
    """Define and start the guest on the prepared disk; reverted by
    undefining it (never the disk)."""
    NAME = 'start_domain'
    KEEPS_INSTANCE = True

    def execute(self, instance_uuid: str, root_disk: dict) -> None:
        instance = self.instance(instance_uuid)
        self.parts.driver.spawn(self.parts.domain_spec(
            instance, types.SimpleNamespace(**root_disk)))

    def revert(self, instance_uuid: str, **kwargs) -> None:
        self.parts.driver.undefine(instance_uuid)


class UndefineDomain(_Task):
    NAME = 'undefine_domain'
    KEEPS_INSTANCE = True

    def execute(self, instance_uuid: str) -> None:
        self.parts.driver.undefine(instance_uuid)


# -- spawn --------------------------------------------------------------------

class PrepareRootDisk(_Task):
    """Base image (once per storage group) and the instance's root disk, or
    its root volume attached here. Reverted by giving the claim back: a
    failed build holds no capacity (its disk stays for delete)."""
    NAME = 'prepare_root_disk'
    KEEPS_INSTANCE = True
    default_provides = 'root_disk'

    def execute(self, instance_uuid: str) -> dict:
        return _disk_record(self.parts.root_disk(
            self.instance(instance_uuid)))

    def revert(self, instance_uuid: str, **kwargs) -> None:
        self.parts.db.release_claim(instance_uuid)


class RecordActive(_Task):
    NAME = 'record_active'

    def execute(self, instance_uuid: str) -> None:
        instance = self.instance(instance_uuid)
        if (instance.vm_state == states.ACTIVE and
                instance.task_state is None):
            return  # recorded by the interrupted run
        self.committed(self.parts.db.instance_update(
            instance_uuid,
            {'vm_state': states.ACTIVE, 'task_state': None,
             'power_state': states.RUNNING,
             'launched_at': timeutils.utcnow()},
            expected_task_state=states.SPAWNING, action='spawn',
            faults=False))


def spawn_flow(run: parts_mod.FlowRun | None):
    return flow_engine.linear('spawn', run, [
        PrepareRootDisk, StartDomain, RecordActive])


# -- shelve -------------------------------------------------------------------

class RecordShelved(_Task):
    NAME = 'record_shelved'

    def execute(self, instance_uuid: str, offload_now: bool) -> None:
        instance = self.instance(instance_uuid)
        next_task = states.SHELVING_OFFLOADING if offload_now else None
        if (instance.vm_state == states.SHELVED and
                instance.task_state == next_task):
            return
        self.committed(self.parts.db.instance_update(
            instance_uuid,
            {'vm_state': states.SHELVED, 'power_state': states.SHUTDOWN,
             'task_state': next_task},
            expected_task_state=states.SHELVING, action='shelve',
            request=next_request(self.parts.host, next_task),
            system_metadata={names.SHELVED_AT: timeutils.utcnow().isoformat(),
                             names.SHELVED_HOST: self.parts.host},
            faults=False))


def shelve_flow(run: parts_mod.FlowRun | None):
    return flow_engine.linear('shelve', run, [PowerOff, RecordShelved])


class SaveMemory(_Task):
    """Hibernate: the running guest's memory to the group's storage (the
    guest stops, its definition stays until the offload)."""
    NAME = 'save_memory'
    default_provides = 'memory_state'

    def execute(self, instance_uuid: str) -> str | None:
        return hibernate.save(self.parts, instance_uuid)


class RecordHibernated(RecordShelved):
    """Shelved, with the saved state's location in the same update."""
    NAME = 'record_shelved'

    def execute(self, instance_uuid: str, offload_now: bool,
                memory_state: str | None) -> None:
        instance = self.instance(instance_uuid)
        next_task = states.SHELVING_OFFLOADING if offload_now else None
        if (instance.vm_state == states.SHELVED and
                instance.task_state == next_task):
            return
        sysmeta = {names.SHELVED_AT: timeutils.utcnow().isoformat(),
                   names.SHELVED_HOST: self.parts.host}
        if memory_state:
            sysmeta[names.SHELVED_MEMORY_STATE] = memory_state
        self.committed(self.parts.db.instance_update(
            instance_uuid,
            {'vm_state': states.SHELVED, 'power_state': states.SHUTDOWN,
             'task_state': next_task},
            expected_task_state=states.SHELVING, action='shelve',
            request=next_request(self.parts.host, next_task),
            system_metadata=sysmeta, faults=False))


def hibernate_shelve_flow(run: parts_mod.FlowRun | None):
    return flow_engine.linear('hibernate_shelve', run, [
        SaveMemory, RecordHibernated])


# -- shelve offload (partial) -------------------------------------------------

class RecordRetainedDisk(_Task):
    """Where the disk is must be durable before the domain, the only other
    record of it, is undefined."""
    NAME = 'record_retained_disk'

    def execute(self, instance_uuid: str) -> None:
        parts = self.parts
        disk = parts.storage.disk_info(instance_uuid)
        parts.db.instance_update(
            instance_uuid, {},
            expected_task_state=states.SHELVING_OFFLOADING,
            action='shelveOffload',
            system_metadata={
                names.SHELVED_HOST: parts.host,
                names.SHELVED_STORAGE_GROUP: parts.db.storage_group_of_host(
                    parts.host),
                names.SHELVED_DISK: os.path.relpath(
                    disk.path, parts.storage.instances_path)})


class ReleaseClaimOffloaded(_Task):
    """Claim back, then the instance offloaded. The release is conditional
    on this host's claim in this task, so it happens exactly once; between
    the two updates nobody can claim the instance (the API accepts no
    unshelve while the task_state is set)."""
    NAME = 'release_claim'

    def execute(self, instance_uuid: str, full: bool) -> None:
        parts = self.parts
        if self.instance(instance_uuid).vm_state == states.SHELVED_OFFLOADED:
            return  # done by the interrupted run
        parts.db.release_claim(
            instance_uuid, only_host=parts.host,
            only_task_state=states.SHELVING_OFFLOADING)
        next_task = states.SHELVING_IMAGE_UPLOADING if full else None
        self.committed(parts.db.instance_update(
            instance_uuid,
            {'vm_state': states.SHELVED_OFFLOADED, 'task_state': next_task,
             'power_state': states.NOSTATE, 'host': None},
            expected_task_state=states.SHELVING_OFFLOADING,
            request=next_request(parts.host, next_task),
            action='shelveOffload', faults=False))


def shelve_offload_flow(run: parts_mod.FlowRun | None):
    return flow_engine.linear('shelve_offload', run, [
        PowerOff, RecordRetainedDisk, UndefineDomain, ReleaseClaimOffloaded])


class ReserveRootVolume(_Task):
    """Guest gone first; then the volume's attachment becomes a reserved
    one without connector; then claim and state."""
    NAME = 'reserve_root_volume'

    def execute(self, instance_uuid: str) -> None:
        # Run again, it replaces the reserved attachment by a new one and
        # deletes the other: still exactly one, without connector.
        self.parts.root_volumes.reserve(
            self.instance(instance_uuid),
            expected_task_state=states.SHELVING_OFFLOADING,
            action='shelveOffload')
        self.parts.db.instance_update(
            instance_uuid, {}, expected_task_state=states.SHELVING_OFFLOADING,
            action='shelveOffload',
            system_metadata={names.SHELVED_HOST: self.parts.host})


def shelve_offload_volume_flow(run: parts_mod.FlowRun | None):
    return flow_engine.linear('shelve_offload_volume', run, [
        PowerOff, UndefineDomain, ReserveRootVolume, ReleaseClaimOffloaded])


# -- full offload -------------------------------------------------------------

class UploadImage(_Task):
    """Upload the retained disk and verify it. Images of an earlier,
    interrupted attempt that were never recorded are deleted first; on
    revert the image goes again, but only while the retained disk exists
    (after that, the image is the only copy)."""
    NAME = 'upload_image'
    default_provides = 'image_id'

    def execute(self, instance_uuid: str) -> str:
        instance = self.instance(instance_uuid)
        recorded = instance.system_metadata.get(names.SHELVED_IMAGE_ID)
        if recorded:
            return recorded
        disk_upload.delete_unrecorded_images(self.parts.image_service,
                                             instance)
        image = disk_upload.upload_retained_disk(
            self.parts.storage, self.parts.image_service, instance)
        return image['id']

    def revert(self, instance_uuid: str, result=None, **kwargs) -> None:
        if not isinstance(result, str):
            return  # the upload itself failed and cleaned up after itself
        if not self.parts.storage.exists(instance_uuid):
            LOG.error('Not deleting image %s of instance %s: its retained '
                      'disk is already gone', result, instance_uuid)
            return
        self.parts.delete_shelved_image(instance_uuid, result)


class RecordImage(_Task):
    NAME = 'record_image'

    def execute(self, instance_uuid: str, image_id: str) -> None:
        self.parts.db.instance_update(
            instance_uuid, {},
            expected_task_state=states.SHELVING_IMAGE_UPLOADING,
            action='shelveOffload',
            system_metadata={names.SHELVED_IMAGE_ID: image_id})

    def revert(self, instance_uuid: str, **kwargs) -> None:
        if self.parts.storage.exists(instance_uuid):
            self.parts.db.instance_update(
                instance_uuid, {},
                system_metadata={names.SHELVED_IMAGE_ID: None})


class DeleteRetainedDisk(_Task):
    """Only now: the verified image's id is durable."""
    NAME = 'delete_retained_disk'

    def execute(self, instance_uuid: str, image_id: str) -> None:
        if hibernate.recorded(self.instance(instance_uuid)):
            LOG.warning('Instance %s: its saved memory state goes with its '
                        'retained disk; it will boot cold from image %s',
                        instance_uuid, image_id)
        freed = self.parts.storage.delete(instance_uuid)
        LOG.info('Instance %s fully offloaded to image %s; %d bytes of '
                 'retained disk freed', instance_uuid, image_id, freed)


class RecordFullOffload(_Task):
    NAME = 'record_full_offload'

    def execute(self, instance_uuid: str,
                next_task_state: str | None) -> None:
        instance = self.instance(instance_uuid)
        if (instance.task_state == next_task_state and
                not instance.system_metadata.get(names.SHELVED_DISK)):
            return
        self.committed(self.parts.db.instance_update(
            instance_uuid, {'task_state': next_task_state},
            expected_task_state=states.SHELVING_IMAGE_UPLOADING,
            action='shelveOffload',
            system_metadata=dict.fromkeys(names.RETAINED_DISK_KEYS),
            faults=False))


def full_offload_flow(run: parts_mod.FlowRun | None):
    return flow_engine.linear('full_offload', run, [
        UploadImage, RecordImage, DeleteRetainedDisk, RecordFullOffload])


# -- unshelve -----------------------------------------------------------------

class AcceptUnshelve(_Task):
    """The durable "started" marker the conductor relies on: task_state
    ``unshelving`` becomes ``spawning`` (as in Nova's unshelve), in one
    conditional update that only succeeds while this host holds the
    claim. A conductor whose call timed out takes the claim back only from
    an instance still ``unshelving`` (one conditional update as well), so
    exactly one of the two wins: either this host never starts the work
    and the conductor tries the next host, or it has started and the
    conductor waits for it, however long the disk takes. Reverted (the
    unshelve failed here) by going back to ``unshelving``, which tells a
    waiting conductor to try the next host."""
    NAME = 'accept_unshelve'
    KEEPS_INSTANCE = True

    def execute(self, instance_uuid: str) -> None:
        parts = self.parts
        instance = self.instance(instance_uuid)
        if (instance.task_state == states.SPAWNING and
                instance.claimed_host == parts.host):
            return  # accepted by the interrupted run
        self.updated(parts.db.instance_update(
            instance_uuid, {'task_state': states.SPAWNING},
            expected_vm_state=[states.SHELVED_OFFLOADED],
            expected_task_state=states.UNSHELVING,
            expected_claimed_host=parts.host, action='unshelve',
            faults=False))

    def revert(self, instance_uuid: str, **kwargs) -> None:
        # Only an accept of this host is undone; a failed accept (the
        # claim went elsewhere) changes nothing.
        with contextlib.suppress(exception.InstanceInvalidState,
                                 exception.InstanceNotFound):
            self.parts.db.instance_update(
                instance_uuid, {'task_state': states.UNSHELVING},
                expected_vm_state=[states.SHELVED_OFFLOADED],
                expected_task_state=states.SPAWNING,
                expected_claimed_host=self.parts.host, action='unshelve')


class PrepareUnshelveDisk(_Task):
    """The retained disk, the root volume attached here, or a new root
    disk from the shelved image. Only while this host holds the claim."""
    NAME = 'prepare_root_disk'
    KEEPS_INSTANCE = True
    default_provides = 'root_disk'

    def execute(self, instance_uuid: str) -> dict:
        instance = self.instance(instance_uuid)
        if instance.claimed_host != self.parts.host:
            raise exception.Conflict(
                reason='instance %s holds no claim on host %s' %
                (instance_uuid, self.parts.host))
        return _disk_record(self.parts.unshelve_disk(instance))

    def revert(self, instance_uuid: str, **kwargs) -> None:
        instance = self.instance(instance_uuid)
        if volumes.is_volume_backed(instance):
            self.parts.reserve_again(instance_uuid)


class FinishUnshelve(_Task):
    """Recorded only while this host still holds the claim in the task
    this host moved the instance to (a claim taken back, by the stuck-task
    check say, means this guest must not run: the revert of
    ``start_domain`` undefines it)."""
    NAME = 'record_active'
    KEEPS_INSTANCE = True
    TASK_STATE = states.SPAWNING

    def execute(self, instance_uuid: str) -> None:
        instance = self.instance(instance_uuid)
        if (instance.vm_state == states.ACTIVE and
                instance.host == self.parts.host and
                instance.task_state is None):
            return
        self.committed(self.parts.finish_unshelve(
            instance_uuid, self.TASK_STATE))


class DeleteShelvedImage(_Task):
    """The guest runs from its new disk: the image is no longer needed.
    Never fails (a leftover is for ``lifecycle-manage disks cleanup``)."""
    NAME = 'delete_shelved_image'

    def execute(self, instance_uuid: str, shelved_image_id: str | None
                ) -> None:
        if shelved_image_id:
            self.parts.delete_shelved_image(instance_uuid,
                                            shelved_image_id)


class ResumeDomain(StartDomain):
    """The guest from its saved memory state when it has one (else, or
    when the state is unusable, booted from its disk). Reverted by
    undefining it; a guest that ran from its state has changed its disk,
    so the state is discarded then."""
    NAME = 'start_domain'

    def execute(self, instance_uuid: str, root_disk: dict) -> str:
        instance = self.instance(instance_uuid)
        return hibernate.resume_or_boot(
            self.parts, instance, self.parts.domain_spec(
                instance, types.SimpleNamespace(**root_disk)))

    def revert(self, instance_uuid: str, **kwargs) -> None:
        parts = self.parts
        ran = parts.driver.get_power_state(instance_uuid) == states.RUNNING
        parts.driver.undefine(instance_uuid)
        if ran and hibernate.recorded(self.instance(instance_uuid)):
            hibernate.discard(parts, instance_uuid,
                              'the guest ran from it; it no longer matches '
                              'the disk')


class DeleteMemoryState(_Task):
    """Only once the guest runs and that is recorded."""
    NAME = 'delete_memory_state'

    def execute(self, instance_uuid: str) -> None:
        hibernate.discard(self.parts, instance_uuid, 'unshelved',
                          instance=self.instance(instance_uuid))


def unshelve_flow(run: parts_mod.FlowRun | None):
    return flow_engine.linear('unshelve', run, [
        AcceptUnshelve, PrepareUnshelveDisk, ResumeDomain, FinishUnshelve,
        DeleteMemoryState, DeleteShelvedImage])


class PowerOn(_Task):
    """The shelved guest again; one whose domain is gone (undefined by
    hand, or by a shelve offload that failed after undefining it) is
    defined again from its root disk, which a shelved instance keeps."""
    NAME = 'power_on'

    def execute(self, instance_uuid: str) -> None:
        parts = self.parts
        instance = self.instance(instance_uuid)
        if hibernate.recorded(instance):
            hibernate.resume_or_boot(parts, instance, parts.domain_spec(
                instance, parts.storage.disk_info(instance_uuid)))
            return
        try:
            parts.driver.power_on(instance_uuid)
        except exception.DomainNotFound:
            LOG.warning('Shelved instance %s has no domain on %s; defining '
                        'it again from its root disk', instance_uuid,
                        parts.host)
            instance = self.instance(instance_uuid)
            disk = parts.root_disk(instance)
            parts.driver.spawn(parts.domain_spec(instance, disk))


class FinishUnshelveShelved(FinishUnshelve):
    """A shelved instance is unshelved by its own host, sent there by the
    API with no conductor and no accept step."""
    TASK_STATE = states.UNSHELVING


def unshelve_shelved_flow(run: parts_mod.FlowRun | None):
    return flow_engine.linear('unshelve_shelved', run, [
        PowerOn, FinishUnshelveShelved, DeleteMemoryState])


# -- delete -------------------------------------------------------------------

class ReleaseClaim(_Task):
    NAME = 'release_claim'

    def execute(self, instance_uuid: str) -> None:
        self.parts.db.release_claim(instance_uuid)


class DeleteDisk(_Task):
    NAME = 'delete_disk'

    def execute(self, instance_uuid: str) -> None:
        freed = self.parts.storage.delete(instance_uuid)
        LOG.info('Instance %s: %d bytes of disk freed', instance_uuid, freed)


class ReleaseRootVolume(_Task):
    """Attachment (and volume) go before the record does: a failure leaves
    the instance, with a fault, to delete again."""
    NAME = 'release_root_volume'

    def execute(self, instance_uuid: str) -> None:
        instance = self.instance(instance_uuid)
        if volumes.is_volume_backed(instance):
            self.parts.root_volumes.release(instance)


class MarkDeleted(_Task):
    NAME = 'mark_deleted'

    def execute(self, instance_uuid: str) -> None:
        self.parts.db.instance_mark_deleted(instance_uuid)


def delete_flow(run: parts_mod.FlowRun | None):
    return flow_engine.linear('delete', run, [
        UndefineDomain, ReleaseClaim, DeleteDisk, ReleaseRootVolume,
        MarkDeleted])


FACTORIES = {
    'spawn': spawn_flow,
    'shelve': shelve_flow,
    'hibernate_shelve': hibernate_shelve_flow,
    'shelve_offload': shelve_offload_flow,
    'shelve_offload_volume': shelve_offload_volume_flow,
    'full_offload': full_offload_flow,
    'unshelve': unshelve_flow,
    'unshelve_shelved': unshelve_shelved_flow,
    'delete': delete_flow,
}
