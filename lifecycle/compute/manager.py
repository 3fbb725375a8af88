"""Compute host side: runs the guests of one host and keeps their disks.

Partial offload keeps the root disk where it is (the storage group's shared
``instances_path``) and gives back only the vCPU/RAM claim; unshelve defines
the domain again from that disk on whichever host of the group the conductor
claimed. A full offload is a second phase on a partially offloaded instance:
the retained disk is uploaded to the image service, and freed once the
verified image's id is recorded; unshelving such an instance builds a new
root disk from that image on any host.

A volume-backed instance (root disk on a Cinder volume, see
``compute/volumes.py``) has no disk here: offload replaces its attachment by
a reserved one without connector, unshelve attaches the volume to the new
host; no snapshot, image or retained disk, so the offload modes do not
apply to it.

The order of steps follows one rule: first make durable what the next step
relies on (system metadata naming the retained disk before the domain is
undefined; the image id before the retained disk is deleted; task_state
``deleting`` before the disk is removed).
"""

import contextlib
import datetime
import time

import oslo_messaging as messaging
from oslo_concurrency import lockutils
from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import exception
from lifecycle import notifications
from lifecycle import states
from lifecycle import storage_groups
from lifecycle.compute import flows
from lifecycle.compute import hibernate
from lifecycle.compute import parts as parts_mod
from lifecycle.compute import volumes
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import models
from lifecycle.flows import engine as flow_engine
from lifecycle import volume
from lifecycle import names

LOG = logging.getLogger(__name__)


def instance_lock(instance_uuid: str):
    # Fair: operations on one instance run in arrival order; other
    # instances are never blocked.
    return lockutils.lock('instance-%s' % instance_uuid, fair=True)


class ComputeManager:
    target = messaging.Target(version='1.2')  # see compute/rpcapi.py

    def __init__(self, host: str, db: db_api.Database, driver, storage,
                 image_service, *, vcpus: int, memory_mb: int,
                 volume_api=None) -> None:
        self.host = host
        self.db = db
        self.driver = driver
        self.storage = storage
        self.image_service = image_service
        self.vcpus = vcpus
        self.memory_mb = memory_mb
        # The [cinder] client is built on first use: hosts without Cinder
        # run image-backed instances only.
        self.volume_api = volume_api or volume.get_volume_api()
        # What the flows' tasks work with (compute/parts.py).
        self.parts = parts_mod.HostParts(
            host, db, driver, storage, image_service,
            volumes.RootVolume(db, self.volume_api, host))
        self.flows = flow_engine.FlowRunner(db, 'compute:%s' % host,
                                            flows.FACTORIES)
        self._next_storage_report = 0.0

    # -- service hooks ----------------------------------------------------

    def init_host(self) -> None:
        self.report_capacity()
        self.resume_interrupted_flows()

    def resume_interrupted_flows(self) -> None:
        """Before this host takes requests: finish (or revert) the flows a
        crash interrupted, then carry on with what they led to (an offload
        after a shelve, an upload after a full-mode offload). A flow that
        fails now ends like any failed operation: reverted, with a fault."""
        for book in self.flows.unfinished():
            instance_uuid = book.meta.get('instance_uuid')
            kind = book.meta.get('kind')
            if kind == 'unshelve':
                with instance_lock(instance_uuid):
                    self._resume_unshelve(book, instance_uuid)
                continue
            with (instance_lock(instance_uuid),
                  self._fault_on_error(
                      instance_uuid,
                      vm_state=states.ERROR if kind == 'spawn' else None)):
                self.flows.resume(book, parts_mod.FlowRun(self.parts))
            self._continue_after(instance_uuid)

    def _resume_unshelve(self, book, instance_uuid: str) -> None:
        """A resumed unshelve that fails has gone back to ``unshelving``
        with this host's claim (the revert of its accept). A conductor
        still waiting for it may take the claim back and try the next host;
        if none does, the claim goes back here. One conditional update
        decides between the two, and only the winner ends the task."""
        try:
            self.flows.resume(book, parts_mod.FlowRun(self.parts))
        except Exception as e:
            LOG.exception('Resumed unshelve of instance %s on %s failed',
                          instance_uuid, self.host)
            self.db.release_claim(
                instance_uuid, only_host=self.host,
                only_task_state=states.UNSHELVING,
                values={'host': None, 'task_state': None},
                fault=db_api.Fault.from_exception(e, host=self.host))

    def _continue_after(self, instance_uuid: str) -> None:
        try:
            instance = self.db.instance_get(instance_uuid, faults=False)
        except exception.InstanceNotFound:
            return
        if (instance.vm_state == states.SHELVED and
                instance.task_state == states.SHELVING_OFFLOADING):
            self.shelve_offload_instance(None, instance_uuid)
        elif (instance.vm_state == states.SHELVED_OFFLOADED and
              instance.task_state == states.SHELVING_IMAGE_UPLOADING and
              instance.system_metadata.get(names.SHELVED_HOST) == self.host):
            self.offload_retained_disk(None, instance_uuid)

    def report_capacity(self) -> None:
        """Capacity and heartbeat; the scheduler skips silent hosts. Every
        ``[compute] storage_report_interval`` the storage report too."""
        self._report_capacity()
        interval = CONF.compute.storage_report_interval
        now = time.monotonic()
        if interval > 0 and now >= self._next_storage_report:
            self._next_storage_report = now + interval
            self.report_storage()

    def report_storage(self) -> None:
        """What this host sees of its storage group's storage, for the
        conductor and API hosts that do not mount it (storage_groups.py).
        A failure is logged and never stops the heartbeat."""
        if self.storage.name == 'rbd':
            return  # a Ceph group's storage is the pool, not a directory
        try:
            storage_groups.report(self.db, self.host,
                                  self.storage.instances_path)
        except Exception as e:  # the heartbeat goes on
            LOG.warning('Cannot report the storage at %s of host %s: %s',
                        self.storage.instances_path, self.host, e)

    def _report_capacity(self) -> None:
        info = self.driver.get_host_capacity()
        self.db.compute_node_report(self.host, {
            'hypervisor_hostname': self.host,
            'hypervisor_type': info.get('hypervisor_type', 'QEMU'),
            'storage_path': self.storage.instances_path,
            'vcpus': self.vcpus or info['vcpus'],
            'memory_mb': self.memory_mb or info['memory_mb'],
            'reserved_memory_mb': CONF.compute.reserved_host_memory_mb,
            'cpu_allocation_ratio': CONF.compute.cpu_allocation_ratio,
            'ram_allocation_ratio': CONF.compute.ram_allocation_ratio,
        })

    def poll_shelved_instances(self) -> None:
        """Offload instances shelved longer than ``shelved_offload_time``."""
        if CONF.shelved_offload_time <= 0:
            return
        cutoff = timeutils.utcnow() - datetime.timedelta(
            seconds=CONF.shelved_offload_time)
        for instance in self.db.instance_get_all(
                host=self.host, vm_states=[states.SHELVED]):
            shelved_at = instance.system_metadata.get(names.SHELVED_AT)
            if (instance.task_state is not None or not shelved_at or
                    timeutils.parse_isotime(shelved_at).replace(
                        tzinfo=None) > cutoff):
                continue
            try:
                self.db.instance_update(
                    instance.uuid, {'task_state': states.SHELVING_OFFLOADING},
                    expected_vm_state=[states.SHELVED],
                    expected_task_state=None, action='shelveOffload',
                    request=flows.next_request(
                        self.host, states.SHELVING_OFFLOADING))
            except exception.InstanceInvalidState:
                continue  # an API request got there first
            LOG.info('Offloading instance %s shelved since %s',
                     instance.uuid, shelved_at)
            self.shelve_offload_instance(None, instance.uuid)

    # -- helpers ----------------------------------------------------------

    @contextlib.contextmanager
    def _fault_on_error(self, instance_uuid: str, vm_state: str | None = None,
                        reraise: bool = False):
        """Record a fault and clear the task_state when a step fails, so an
        instance never stays in a task forever; ``vm_state`` also moves it
        (to error, for a failed build)."""
        try:
            yield
        except Exception as e:
            LOG.exception('Operation on instance %s failed', instance_uuid)
            values = {'task_state': None}
            if vm_state:
                values['vm_state'] = vm_state
            with contextlib.suppress(exception.InstanceNotFound):
                self.db.instance_update(
                    instance_uuid, values,
                    fault=db_api.Fault.from_exception(e, host=self.host))
            if reraise:
                raise

    def _still_wanted(self, instance_uuid: str, task_state: str,
                      method: str) -> bool:
        """Under the instance's lock: is its task still the one this
        request is for? A request can arrive twice (sent again after a
        crash while the first was still queued, see lifecycle/requests.py);
        the second finds the task done or moved on and is dropped."""
        try:
            current = self.db.instance_get(instance_uuid,
                                           faults=False).task_state
        except exception.InstanceNotFound:
            current = 'deleted'
        if current == task_state:
            return True
        LOG.info('Instance %s: %s on %s dropped: its task is %s, not %s '
                 '(a request sent twice)', instance_uuid, method, self.host,
                 current, task_state)
        return False

    # -- endpoints --------------------------------------------------------
    # Each endpoint runs one persisted flow (compute/flows.py) under the
    # instance's lock; notifications and the fault record wrap the flow.

    def _run_flow(self, kind: str, instance_uuid: str, *,
                  instance: models.Instance | None = None, **store
                  ) -> models.Instance | None:
        """Run a new flow of ``kind``; the row its last update committed
        (None when the interrupted run had recorded it). ``instance``: the
        row just read under the instance's lock, the run's first copy."""
        run = parts_mod.FlowRun(self.parts, instance=instance)
        self.flows.run(kind, run, dict(store, instance_uuid=instance_uuid))
        return run.committed

    def build_and_run_instance(self, context, instance_uuid: str) -> None:
        with instance_lock(instance_uuid):
            if self._still_wanted(instance_uuid, states.SPAWNING,
                                  'build_and_run_instance'):
                self._build(context, instance_uuid)

    def _build(self, context, instance_uuid: str) -> None:
        with (self._fault_on_error(instance_uuid, vm_state=states.ERROR),
              notifications.instance_action(self, context, instance_uuid,
                                            'create') as action):
            action.instance = self._run_flow('spawn', instance_uuid)
            LOG.info('Instance %s spawned on %s', instance_uuid, self.host)

    def start_instance(self, context, instance_uuid: str) -> None:
        with instance_lock(instance_uuid), self._fault_on_error(
                instance_uuid):
            if not self._still_wanted(instance_uuid, states.POWERING_ON,
                                      'start_instance'):
                return
            self.driver.power_on(instance_uuid)
            self.db.instance_update(
                instance_uuid, {'vm_state': states.ACTIVE, 'task_state': None,
                                'power_state': states.RUNNING},
                expected_task_state=states.POWERING_ON, action='start')

    def stop_instance(self, context, instance_uuid: str,
                      clean_shutdown: bool = True) -> None:
        with instance_lock(instance_uuid), self._fault_on_error(
                instance_uuid):
            if not self._still_wanted(instance_uuid, states.POWERING_OFF,
                                      'stop_instance'):
                return
            self.parts.power_off(instance_uuid, clean_shutdown)
            self.db.instance_update(
                instance_uuid, {'vm_state': states.STOPPED, 'task_state': None,
                                'power_state': states.SHUTDOWN},
                expected_task_state=states.POWERING_OFF, action='stop')

    def shelve_instance(self, context, instance_uuid: str,
                        clean_shutdown: bool = True,
                        keep_memory: bool | None = None) -> None:
        """``keep_memory``: the request's choice of a hibernate-shelve
        (None: the image's property or ``[shelve] keep_memory``)."""
        offload_now = CONF.shelved_offload_time == 0
        with instance_lock(instance_uuid):
            if not self._still_wanted(instance_uuid, states.SHELVING,
                                      'shelve_instance'):
                return
            self._shelve(context, instance_uuid, clean_shutdown, keep_memory,
                         offload_now)
        if offload_now:
            self.shelve_offload_instance(context, instance_uuid,
                                         clean_shutdown=clean_shutdown)

    def _shelve(self, context, instance_uuid: str, clean_shutdown: bool,
                keep_memory: bool | None, offload_now: bool) -> None:
        with (self._fault_on_error(instance_uuid),
              notifications.instance_action(self, context, instance_uuid,
                                            'shelve') as action):
            instance = self.db.instance_get(instance_uuid)
            hibernating = hibernate.wanted(instance, keep_memory)
            if hibernating and not hibernate.supported(self.storage,
                                                       instance):
                LOG.warning('Instance %s is shelved without its memory: '
                            'its root disk is a volume or on Ceph RBD',
                            instance_uuid)
                hibernating = False
            action.instance = self._run_flow(
                'hibernate_shelve' if hibernating else 'shelve',
                instance_uuid, clean_shutdown=clean_shutdown,
                offload_now=offload_now)

    def shelve_offload_instance(self, context, instance_uuid: str,
                                clean_shutdown: bool = True) -> None:
        with instance_lock(instance_uuid):
            full = (self._still_wanted(instance_uuid,
                                       states.SHELVING_OFFLOADING,
                                       'shelve_offload_instance') and
                    self._shelve_offload(context, instance_uuid,
                                         clean_shutdown))
        if full:
            self.offload_retained_disk(context, instance_uuid)

    def _shelve_offload(self, context, instance_uuid: str,
                        clean_shutdown: bool) -> bool:
        """True when a full offload (the upload) follows."""
        full = False
        with (self._fault_on_error(instance_uuid),
              notifications.instance_action(self, context, instance_uuid,
                                            'shelve_offload') as action):
            instance = self.db.instance_get(instance_uuid, faults=False)
            if volumes.is_volume_backed(instance):
                # No disk here, so no upload either: the offload mode does
                # not apply.
                action.instance = self._run_flow(
                    'shelve_offload_volume', instance_uuid,
                    clean_shutdown=clean_shutdown, full=False)
            else:
                full = CONF.shelve.offload_mode == 'full'
                action.instance = self._run_flow(
                    'shelve_offload', instance_uuid,
                    clean_shutdown=clean_shutdown, full=full)
            LOG.info('Instance %s offloaded from %s; its root disk stays in '
                     'its storage group', instance_uuid, self.host)
        return full

    def offload_retained_disk(self, context, instance_uuid: str,
                              next_task_state: str | None = None) -> None:
        """Full offload of a partially offloaded instance (task_state
        ``shelving_image_uploading``, set by the caller): upload, record the
        verified image, then free the retained disk; the task_state ends as
        ``next_task_state``. A failed upload leaves the instance partially
        offloaded, with a fault, and unshelvable; the error goes back to a
        caller that waits."""
        with instance_lock(instance_uuid):
            if not self._still_wanted(instance_uuid,
                                      states.SHELVING_IMAGE_UPLOADING,
                                      'offload_retained_disk'):
                return
            with (self._fault_on_error(instance_uuid, reraise=True),
                  notifications.instance_action(
                      self, context, instance_uuid,
                      'shelve_offload') as action):
                action.instance = self._run_flow(
                    'full_offload', instance_uuid,
                    next_task_state=next_task_state)

    def unshelve_instance(self, context, instance_uuid: str,
                          request_spec: dict | None = None) -> None:
        """Unshelve here. For an offloaded instance the conductor has already
        claimed this host; failures are re-raised so it can try another."""
        with instance_lock(instance_uuid):
            instance = self.db.instance_get(instance_uuid, faults=False)
            if (instance.vm_state == states.ACTIVE and
                    instance.host == self.host and
                    instance.task_state is None):
                return  # a resumed conductor asking again: done already
            if instance.vm_state == states.SHELVED:
                if instance.task_state != states.UNSHELVING:
                    self._still_wanted(instance_uuid, states.UNSHELVING,
                                       'unshelve_instance')  # logs the drop
                    return
                with (self._fault_on_error(instance_uuid),
                      notifications.instance_action(
                          self, context, instance_uuid, 'unshelve') as action):
                    action.instance = self._run_flow('unshelve_shelved',
                                                     instance_uuid)
                return
            try:
                with notifications.instance_action(
                        self, context, instance_uuid, 'unshelve') as action:
                    action.instance = self._run_flow(
                        'unshelve', instance_uuid, instance=instance,
                        shelved_image_id=instance.system_metadata.get(
                            names.SHELVED_IMAGE_ID))
            except volume.InvalidVolume as e:
                self._end_unshelve(instance_uuid, e)
                return
            LOG.info('Instance %s unshelved on %s', instance_uuid, self.host)

    def _end_unshelve(self, instance_uuid: str,
                      error: volume.InvalidVolume) -> None:
        """The root volume's export is one no host of this service can use
        (unknown protocol, no monitor, Cinder refused the attachment): the
        next host would fail the same way, so the unshelve ends here with
        the fault, still offloaded (the flow's revert reserved the volume
        again), as Nova's unshelve does. Re-raised when the conductor has
        taken the claim back meanwhile."""
        released = self.db.release_claim(
            instance_uuid, only_host=self.host,
            only_task_state=states.UNSHELVING,
            values={'host': None, 'task_state': None},
            fault=db_api.Fault.from_exception(error, host=self.host))
        if released is None:
            raise error
        LOG.error('Unshelve of instance %s on %s ended: %s', instance_uuid,
                  self.host, error.format_message())

    def terminate_instance(self, context, instance_uuid: str) -> None:
        with instance_lock(instance_uuid):
            if not self._still_wanted(instance_uuid, states.DELETING,
                                      'terminate_instance'):
                return
            with (self._fault_on_error(instance_uuid),
                  notifications.instance_action(self, context, instance_uuid,
                                                'delete')):
                self._run_flow('delete', instance_uuid)
                LOG.info('Instance %s deleted', instance_uuid)
