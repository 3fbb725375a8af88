"""What the REST API asks for, checked and handed to the conductor or to the
instance's compute host.

Each action first moves the instance's task_state with a compare-and-swap in
the database (``Database.instance_update`` with expected states): of two
racing requests one wins and the other gets 409 with nothing changed, on one
process or many.

A volume-backed server (``block_device_mapping_v2`` with a bootable root
volume, see ``compute/block_device.py``) gets its volume reserved here at
create, as Nova's API does (an attachment without connector, so no other
server can take the volume meanwhile); deleting it while offloaded is done
here too (Nova's local delete): it has no host, and nothing but Cinder to
clean up.
"""

import datetime
import socket
import types
from collections.abc import Iterable, Mapping

from oslo_log import log as logging
from oslo_utils import uuidutils

from lifecycle import exception
from lifecycle import notifications
from lifecycle import states
from lifecycle import volume
from lifecycle.compute import block_device
from lifecycle.compute import rpcapi as compute_rpcapi
from lifecycle.compute import volumes
from lifecycle.conductor import rpcapi as conductor_rpcapi
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import models
from lifecycle.flows import faults
from lifecycle import names

LOG = logging.getLogger(__name__)

UNSET = object()
# The fault-injection boundary between recording a request and sending it
# (``LIFECYCLE_FAULT_BOUNDARY=accepted:<method>:after``).
ACCEPTED = 'accepted'


def _image_system_metadata(image: dict) -> dict:
    """The image properties a compute host needs later, as Nova copies
    them (``image_<property>``)."""
    props = dict(image.get('properties') or {})
    return {key: str(props[prop])
            for prop, key in names.SYSMETA_IMAGE_PROPERTIES.items()
            if props.get(prop) not in (None, '')}


class API:
    def __init__(self, db: db_api.Database, image_service,
                 conductor: conductor_rpcapi.ConductorAPI,
                 compute: compute_rpcapi.ComputeAPI,
                 volume_api=None) -> None:
        self.db = db
        self.image_service = image_service
        self.conductor = conductor
        self.compute = compute
        # Built on first use; without [cinder], volume requests get 400.
        self.volume_api = volume_api or volume.get_volume_api()

    # -- reads --------------------------------------------------------------

    def get(self, context, instance_uuid: str, *,
            faults: bool = True) -> models.Instance:
        """``faults=False``: without its faults (Database.instance_get)."""
        if not uuidutils.is_uuid_like(instance_uuid):
            raise exception.InstanceNotFound(instance_id=instance_uuid)
        return self.db.instance_get(instance_uuid, faults=faults)

    def get_all(self, context, *, limit: int | None = None,
                marker: str | None = None,
                changed_since: datetime.datetime | None = None,
                changed_before: datetime.datetime | None = None,
                exact: Mapping[str, Iterable[str]] | None = None
                ) -> list[models.Instance]:
        """``exact``: instance column -> the values it may have."""
        return self.db.instance_get_all(
            limit=limit, marker=marker, changed_since=changed_since,
            changed_before=changed_before, exact=exact)

    # -- create -------------------------------------------------------------

    def create(self, context, *, name: str, image_ref: str | None,
               flavor_ref: str, metadata: dict | None = None,
               host: str | None = None,
               availability_zone: str | None = None,
               block_device_mapping: list[dict] | None = None,
               scheduler_hints: dict | None = None
               ) -> models.Instance:
        """Checks everything before changing anything: a 400 leaves no
        instance and no attachment behind."""
        root = block_device.root_volume(image_ref, block_device_mapping)
        if root is None and not image_ref:
            raise exception.InvalidInput(reason='Missing imageRef attribute')
        try:
            flavor = self.db.flavor_get(str(flavor_ref))
        except exception.FlavorNotFound as e:
            raise exception.InvalidInput(reason=e.format_message()) from e
        image_sysmeta = {}
        if root is None:
            try:
                image = self.image_service.get(image_ref)
            except exception.ImageNotFound as e:
                raise exception.InvalidInput(
                    reason=e.format_message()) from e
            image_id = image['id']
            image_sysmeta = _image_system_metadata(image)
        if host is not None:
            try:
                self.db.compute_node_get(host)
            except exception.ComputeHostNotFound as e:
                raise exception.InvalidInput(reason=e.format_message()) from e
        values = {'uuid': uuidutils.generate_uuid(), 'display_name': name,
                  'user_id': context.user_id or 'admin',
                  'project_id': context.project_id or 'admin',
                  'image_ref': '' if root else image_id,
                  'flavorid': flavor.flavorid,
                  'flavor_name': flavor.name, 'vcpus': flavor.vcpus,
                  'memory_mb': flavor.memory_mb, 'root_gb': flavor.root_gb,
                  'vm_state': states.BUILDING,
                  'task_state': states.SCHEDULING,
                  'availability_zone': availability_zone}
        spec = {'requested_host': host, 'availability_zone': availability_zone,
                'scheduler_hints': scheduler_hints or {}}
        request = db_api.Request.of(states.SCHEDULING, 'conductor',
                                    'build_instance', context,
                                    request_spec=spec)
        if root is None:
            instance = self.db.instance_create(
                values, metadata=metadata,
                system_metadata=image_sysmeta or None, request=request)
        else:
            instance = self._create_volume_backed(values, metadata, root,
                                                  request)
        faults.boundary(ACCEPTED, request.method, faults.AFTER)
        self.conductor.build_instance(context, instance.uuid, spec)
        return instance

    def _create_volume_backed(self, values: dict, metadata: dict | None,
                              root: block_device.RootVolume,
                              request: db_api.Request) -> models.Instance:
        """Check the volume, reserve it for the new instance, record both."""
        try:
            self.volume_api.check_boot_volume(root.volume_id)
        except volume.VolumeNotFound as e:
            raise exception.InvalidInput(
                reason='Block Device Mapping is Invalid: %s'
                       % e.format_message()) from e
        # Cinder refuses a second reservation of a volume that is not
        # multiattach: of two racing creates, one gets 400.
        attachment = self.volume_api.attachment_create(root.volume_id,
                                                       values['uuid'])
        sysmeta = {volumes.ROOT_VOLUME_ID: root.volume_id,
                   volumes.ROOT_ATTACHMENT_ID: attachment['id'],
                   volumes.DELETE_ON_TERMINATION: (
                       'true' if root.delete_on_termination else 'false')}
        try:
            return self.db.instance_create(values, metadata=metadata,
                                           system_metadata=sysmeta,
                                           request=request)
        except Exception:
            self.volume_api.attachment_delete(attachment['id'])
            raise

    # -- actions on an instance with a host --------------------------------

    def _begin(self, context, instance_uuid: str, action: str,
               task_state: str, method: str, *,
               instance: models.Instance | None = None,
               to_conductor: bool = False,
               expected_vm_state: list[str] | None = None,
               **args) -> models.Instance:
        """Set the task (compare-and-swap) and record the request that
        carries it out, ``method`` of the instance's compute host (or of
        the conductor) with ``args``, in one transaction: once the caller
        has its 202, the request survives any crash (requests.py).
        ``instance`` when the caller has read it already (visible to the
        request's context): then its vm_state must not have changed, as
        the request was chosen for it."""
        expected = expected_vm_state or states.ALLOWED_VM_STATES[action]
        if instance is not None and instance.vm_state in expected:
            expected = [instance.vm_state]
        instance = instance or self.get(context, instance_uuid)
        request = db_api.Request.of(
            task_state, 'conductor' if to_conductor else 'compute', method,
            context, host=None if to_conductor else instance.host, **args)
        # Read back without its faults: the callers send the request to
        # the row's host; the 202 carries no body.
        instance = self.db.instance_update(
            instance.uuid, {'task_state': task_state},
            expected_vm_state=expected, expected_task_state=None,
            request=request, action=action, faults=False)
        # Fault injection: killed here, the request is recorded, not sent.
        faults.boundary(ACCEPTED, method, faults.AFTER)
        return instance

    # The actions take ``instance`` when the caller has read it already
    # (the API's policy check does): the request is then chosen for that
    # row, and its vm_state must not have changed (see _begin).

    def start(self, context, instance_uuid: str, *,
              instance: models.Instance | None = None) -> None:
        instance = self._begin(context, instance_uuid, 'start',
                               states.POWERING_ON, 'start_instance',
                               instance=instance)
        self.compute.start_instance(context, instance.host, instance.uuid)

    def stop(self, context, instance_uuid: str, *,
             instance: models.Instance | None = None) -> None:
        instance = self._begin(context, instance_uuid, 'stop',
                               states.POWERING_OFF, 'stop_instance',
                               instance=instance)
        self.compute.stop_instance(context, instance.host, instance.uuid)

    def shelve(self, context, instance_uuid: str,
               keep_memory: bool | None = None, *,
               instance: models.Instance | None = None) -> None:
        """``keep_memory`` True asks for a hibernate-shelve (see
        compute/hibernate.py), False for a plain one whatever the defaults;
        None leaves it to the image property and ``[shelve] keep_memory``."""
        if keep_memory:
            current = instance or self.get(context, instance_uuid)
            if volumes.is_volume_backed(current):
                raise exception.Conflict(
                    reason='instance %s is volume-backed: its memory cannot '
                           'be kept on the storage group' % current.uuid)
        args = {} if keep_memory is None else {'keep_memory': keep_memory}
        instance = self._begin(context, instance_uuid, 'shelve',
                               states.SHELVING, 'shelve_instance',
                               instance=instance, **args)
        self.compute.shelve_instance(context, instance.host, instance.uuid,
                                     keep_memory=keep_memory)

    def shelve_offload(self, context, instance_uuid: str, *,
                       instance: models.Instance | None = None) -> None:
        current = instance or self.get(context, instance_uuid)
        if (current.vm_state == states.SHELVED_OFFLOADED and
                volumes.is_volume_backed(current)):
            # Nothing to escalate: no retained disk, no image, in any mode.
            raise exception.Conflict(
                reason='instance %s is volume-backed and already offloaded; '
                       'its root volume stays in Cinder (no disk to upload)'
                       % current.uuid)
        if (current.vm_state == states.SHELVED_OFFLOADED and
                current.system_metadata.get(names.SHELVED_DISK) and
                CONF.shelve.offload_mode == 'full'):
            # Escalation of a partial offload: upload the retained disk.
            self._begin(context, current.uuid, 'shelveOffload',
                        states.SHELVING_IMAGE_UPLOADING,
                        'offload_retained_disk', instance=current,
                        to_conductor=True,
                        expected_vm_state=[states.SHELVED_OFFLOADED])
            self.conductor.offload_retained_disk(context, current.uuid)
            return
        instance = self._begin(context, instance_uuid, 'shelveOffload',
                               states.SHELVING_OFFLOADING,
                               'shelve_offload_instance', instance=current)
        self.compute.shelve_offload_instance(context, instance.host,
                                             instance.uuid)

    def unshelve(self, context, instance_uuid: str, *,
                 host: str | None = None, availability_zone=UNSET,
                 instance: models.Instance | None = None) -> None:
        current = instance or self.get(context, instance_uuid)
        if (host is not None or availability_zone is not UNSET) and (
                current.vm_state != states.SHELVED_OFFLOADED):
            # Nova 2.91: a destination only makes sense when offloaded.
            raise exception.InstanceInvalidState(
                action='unshelve', instance_uuid=current.uuid,
                attr='vm_state', state=current.vm_state)
        if host is not None:
            self._check_unshelve_host(current, host)
        if current.vm_state == states.SHELVED:
            # Still on its host with resources claimed: power it on there.
            instance = self._begin(context, instance_uuid, 'unshelve',
                                   states.UNSHELVING, 'unshelve_instance',
                                   instance=current)
            self.compute.unshelve_instance(context, instance.host,
                                           instance.uuid)
            return
        spec = {'requested_host': host}
        if availability_zone is not UNSET:
            spec['availability_zone'] = availability_zone
        instance = self._begin(context, instance_uuid, 'unshelve',
                               states.UNSHELVING, 'unshelve_instance',
                               instance=current, to_conductor=True,
                               request_spec=spec)
        self.conductor.unshelve_instance(context, instance.uuid, spec)

    def _check_unshelve_host(self, instance: models.Instance,
                             host: str) -> None:
        try:
            self.db.compute_node_get(host)
        except exception.ComputeHostNotFound as e:
            raise exception.InvalidInput(reason=e.format_message()) from e
        group = instance.system_metadata.get(names.SHELVED_STORAGE_GROUP)
        if group and host not in self.db.hosts_in_storage_group(group):
            raise exception.InvalidInput(
                reason='host %s is not in storage group %s, which holds the '
                       'retained disk of instance %s' %
                       (host, group, instance.uuid))

    def delete(self, context, instance_uuid: str, *,
               instance: models.Instance | None = None) -> None:
        instance = instance or self.get(context, instance_uuid)
        if instance.host:
            method, to_conductor = 'terminate_instance', False
        elif volumes.is_volume_backed(instance):
            # Done within this API request (no 202 to keep): nothing to
            # carry out later; the stuck-task check ends what a crash here
            # leaves.
            method = None
        else:
            method, to_conductor = 'delete_offloaded_instance', True
        if method is None:
            instance = self.db.instance_update(
                instance.uuid, {'task_state': states.DELETING},
                expected_vm_state=states.ALLOWED_VM_STATES['delete'],
                expected_task_state=None, action='delete')
        else:
            instance = self._begin(context, instance.uuid, 'delete',
                                   states.DELETING, method,
                                   instance=instance,
                                   to_conductor=to_conductor)
        if instance.host:
            self.compute.terminate_instance(context, instance.host,
                                            instance.uuid)
        elif volumes.is_volume_backed(instance):
            self._local_delete(context, instance)
        else:
            self.conductor.delete_offloaded_instance(context, instance.uuid)

    def _local_delete(self, context, instance: models.Instance) -> None:
        """An offloaded volume-backed instance: its reserved attachment goes
        (and its volume, if ``delete_on_termination``), then the record. A
        failure leaves the instance with a fault, to delete again."""
        notifier = types.SimpleNamespace(
            db=self.db, host=CONF.host or socket.gethostname())
        try:
            with notifications.instance_action(notifier, context,
                                               instance.uuid, 'delete'):
                volumes.RootVolume(self.db, self.volume_api,
                                   None).release(instance)
                self.db.instance_mark_deleted(instance.uuid)
        except Exception as e:
            LOG.exception('Deleting offloaded instance %s failed',
                          instance.uuid)
            self.db.instance_update(instance.uuid, {'task_state': None},
                                    fault=db_api.Fault.from_exception(e))
            return
        LOG.info('Offloaded instance %s deleted', instance.uuid)
