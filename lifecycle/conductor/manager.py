"""Conductor: places instances that have no host yet and hands them to a
compute host.

Unshelve of an offloaded instance goes through the candidate hosts the
scheduler returns (the original host first, then the rest of its storage
group), claiming each atomically in the database; when a compute host fails
to claim or to start the guest, the claim is given back and the next
candidate is tried. Nova has no alternates on unshelve; here an unshelve
that finds no host ends with a recorded fault, never silently -- or, with
``[shelve] unshelve_fallback = transfer``, escalates to a full offload and
places the instance on any host.

The conductor also escalates partial offloads to full ones by policy
(``[shelve] retained_disk_max_age`` and the storage watermarks): a host of
the disk's storage group uploads it.
"""

import collections
import contextlib
import datetime
import threading

import oslo_messaging as messaging
from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import context as lc_context
from lifecycle import exception
from lifecycle import states
from lifecycle import storage_groups
from lifecycle.compute import rpcapi as compute_rpcapi
from lifecycle.conductor import flows as conductor_flows
from lifecycle.conductor import stuck
from lifecycle.conductor import scheduler as scheduler_mod
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.flows import engine as flow_engine

LOG = logging.getLogger(__name__)


class ConductorManager:
    target = messaging.Target(version='1.1')  # see conductor/rpcapi.py

    def __init__(self, db: db_api.Database,
                 compute: compute_rpcapi.ComputeAPI,
                 scheduler: scheduler_mod.Scheduler,
                 host: str = 'conductor') -> None:
        self.db = db
        self.compute = compute
        self.scheduler = scheduler
        self.flows = flow_engine.FlowRunner(db, 'conductor:%s' % host,
                                            conductor_flows.FACTORIES)
        self._stats_lock = threading.Lock()
        self.stats: collections.Counter = collections.Counter()

    def _count(self, event: str) -> None:
        with self._stats_lock:
            self.stats[event] += 1

    def _no_valid_host(self, instance_uuid: str, reason: str,
                       values: dict) -> None:
        self._count('no_valid_host')
        error = exception.NoValidHost(reason=reason)
        LOG.warning('Instance %s: %s', instance_uuid, error.format_message())
        self.db.instance_fault_create(instance_uuid, error.code,
                                      error.format_message(),
                                      details='NoValidHost')
        self.db.instance_update(instance_uuid, values)

    def _claim_first_fit(self, instance, candidates: list[str]) -> str | None:
        for host in candidates:
            try:
                self.db.claim(instance.uuid, host)
                self._count('claims')
                return host
            except exception.ClaimFailed as e:
                self._count('claim_retries')
                # Another request took the capacity after the host was
                # selected: a scheduling retry, not an error.
                LOG.debug('Retrying instance %s: %s', instance.uuid,
                          e.format_message())
        return None

    def _run_flow(self, kind: str, context, instance_uuid: str,
                  request_spec: dict) -> None:
        # Tokens are never written to the database: RPC between the
        # services does not need them.
        stored = {k: v for k, v in (context.to_dict() if context else {})
                  .items() if 'token' not in k}
        self.flows.run(kind, self, {
            'instance_uuid': instance_uuid, 'request_spec': request_spec,
            'request_context': stored})

    def build_instance(self, context, instance_uuid: str,
                       request_spec: dict) -> None:
        self._run_flow('build', context, instance_uuid, request_spec)

    def unshelve_instance(self, context, instance_uuid: str,
                          request_spec: dict) -> None:
        self._run_flow('unshelve', context, instance_uuid, request_spec)

    def init_host(self) -> None:
        """Before taking requests: resume the placements a crash of this
        conductor interrupted (a failure ends them with a fault)."""
        for book in self.flows.unfinished():
            instance_uuid = book.meta.get('instance_uuid')
            try:
                self.flows.resume(book, self)
            except Exception as e:
                LOG.exception('Resumed %s of instance %s failed',
                              book.meta.get('kind'), instance_uuid)
                self._record_failure(instance_uuid, e)

    def _record_failure(self, instance_uuid: str, error: Exception) -> None:
        message = (error.format_message()
                   if isinstance(error, exception.LifecycleException)
                   else str(error) or type(error).__name__)
        with contextlib.suppress(exception.InstanceNotFound):
            self.db.instance_fault_create(instance_uuid,
                                          getattr(error, 'code', 500),
                                          message,
                                          details=type(error).__name__)
            self.db.release_claim(instance_uuid)
            self.db.instance_update(instance_uuid, {'task_state': None})

    def _give_up_on(self, instance_uuid: str, host: str) -> None:
        """A host that does not answer may still be starting the guest, so
        no other host may start it: take the claim back only if that host
        has not finished (one conditional update decides against the
        host's own), record why, and let the user retry."""
        self._count('timeouts')
        released = self.db.release_claim(
            instance_uuid, only_host=host,
            only_task_state=states.UNSHELVING,
            values={'task_state': None, 'host': None})
        if released is None:
            return  # the host finished after all
        message = ('Compute host %s did not answer the unshelve within %d s; '
                   'the instance stays offloaded, unshelve it again.' %
                   (host, CONF.rpc_response_timeout))
        LOG.warning('Instance %s: %s', instance_uuid, message)
        self.db.instance_fault_create(instance_uuid, 504, message,
                                      details='MessagingTimeout')

    def _transfer_and_unshelve(self, context, instance, request_spec: dict,
                               reason: str) -> None:
        """No host of the storage group fits: upload the retained disk,
        then unshelve from the image on any host."""
        LOG.info('Instance %s: %s Transferring it out of its storage group '
                 '([shelve] unshelve_fallback = transfer)', instance.uuid,
                 reason)
        self._count('transfers')
        hosts = self.scheduler.hosts_reaching_disk(instance)
        if not hosts:
            self._no_valid_host(instance.uuid, reason + ' No host can reach '
                                'the retained disk to transfer it.',
                                {'task_state': None, 'host': None})
            return
        self.db.instance_update(
            instance.uuid, {'task_state': states.SHELVING_IMAGE_UPLOADING},
            expected_task_state=states.UNSHELVING, action='unshelve')
        try:
            self.compute.offload_retained_disk(
                context, hosts[0], instance.uuid,
                next_task_state=states.UNSHELVING,
                timeout=CONF.shelve.transfer_timeout)
        except Exception as e:  # the compute recorded the fault
            LOG.warning('Transfer of instance %s failed: %s', instance.uuid,
                        e)
            return
        self.unshelve_instance(context, instance.uuid, request_spec)

    def delete_offloaded_instance(self, context, instance_uuid: str) -> None:
        """The retained disk lives on the storage group: any up host of the
        group can remove it, the original host preferred."""
        instance = self.db.instance_get(instance_uuid)
        hosts = self.scheduler.hosts_reaching_disk(instance)
        if not hosts:
            self._no_valid_host(
                instance_uuid, 'No compute host of storage group %s is up to '
                'delete the retained disk.' %
                instance.system_metadata.get('shelved_storage_group'),
                {'task_state': None})
            return
        self.compute.terminate_instance(context, hosts[0], instance_uuid)

    def end_stuck_tasks(self) -> list[str]:
        """Periodic: see conductor/stuck.py."""
        if CONF.stuck_task_timeout <= 0:
            return []
        return stuck.end_stuck_tasks(self.db, self.flows,
                                     CONF.stuck_task_timeout)

    # -- escalation from partial to full offload --------------------------

    def offload_retained_disk(self, context, instance_uuid: str) -> None:
        """Hand a full offload to a host that sees the retained disk."""
        instance = self.db.instance_get(instance_uuid)
        hosts = self.scheduler.hosts_reaching_disk(instance)
        if not hosts:
            self._no_valid_host(
                instance_uuid, 'No up host of storage group %s can upload '
                'the retained disk.' %
                instance.system_metadata.get('shelved_storage_group'),
                {'task_state': None})
            return
        self.compute.offload_retained_disk(context, hosts[0], instance_uuid)

    def _escalate(self, context, instance_uuid: str, why: str) -> bool:
        try:
            self.db.instance_update(
                instance_uuid,
                {'task_state': states.SHELVING_IMAGE_UPLOADING},
                expected_vm_state=[states.SHELVED_OFFLOADED],
                expected_task_state=None, action='shelveOffload')
        except (exception.InstanceInvalidState, exception.InstanceNotFound):
            return False  # a request got there first
        LOG.info('Escalating instance %s to a full offload: %s',
                 instance_uuid, why)
        self._count('escalations')
        self.offload_retained_disk(context, instance_uuid)
        return True

    def escalate_retained_disks(self, context=None) -> list[str]:
        """Periodic: apply the age limit and the storage watermarks."""
        context = context or lc_context.get_admin_context()
        retained, uploading = self._retained_by_age()
        escalated = []
        max_age = CONF.shelve.retained_disk_max_age
        if max_age > 0:
            cutoff = timeutils.utcnow() - datetime.timedelta(seconds=max_age)
            for instance_uuid, _group, shelved_at in retained:
                if shelved_at <= cutoff and self._escalate(
                        context, instance_uuid,
                        'retained longer than %d s' % max_age):
                    escalated.append(instance_uuid)
        if CONF.shelve.storage_high_watermark > 0:
            escalated += self._apply_watermarks(context, retained, escalated,
                                                uploading)
        return escalated

    def _retained_by_age(self) -> tuple[list[tuple], list[tuple]]:
        """(uuid, group, shelved_at) of retained disks, oldest first; and
        (uuid, group) of those being uploaded already."""
        rows, uploading = [], []
        for instance_uuid, group in self.db.storage_group_retained_disks():
            try:
                instance = self.db.instance_get(instance_uuid)
            except exception.InstanceNotFound:
                continue
            shelved_at = instance.system_metadata.get('shelved_at')
            if instance.task_state == states.SHELVING_IMAGE_UPLOADING:
                uploading.append((instance_uuid, group))
            elif instance.task_state is None and shelved_at:
                rows.append((instance_uuid, group, timeutils.parse_isotime(
                    shelved_at).replace(tzinfo=None)))
        return sorted(rows, key=lambda row: row[2]), uploading

    def _apply_watermarks(self, context, retained: list[tuple],
                          done: list[str],
                          uploading: list[tuple]) -> list[str]:
        high = CONF.shelve.storage_high_watermark / 100.0
        low = CONF.shelve.storage_low_watermark / 100.0
        escalated = []
        for group in sorted({row[1] for row in retained}):
            usage = storage_groups.usage(self.db, group)
            capacity, free = usage.get('capacity_bytes'), usage.get(
                'free_bytes')
            if not capacity or free is None:
                continue  # the group's storage is not visible here
            root = storage_groups.storage_root(self.db, group)
            if root is None:
                continue
            # Disks being uploaded (and their staging copies) are about to
            # go: counting them would escalate more than needed.
            used = capacity - free - sum(
                storage_groups.allocated_bytes(root, instance_uuid)
                for instance_uuid, in_group in uploading if in_group == group)
            if used <= high * capacity:
                continue
            for instance_uuid, _group, _at in (r for r in retained
                                                if r[1] == group):
                if used <= low * capacity:
                    break
                if instance_uuid in done:
                    continue
                size = storage_groups.allocated_bytes(root, instance_uuid)
                if self._escalate(context, instance_uuid,
                                  'storage group %s is %.0f%% full' %
                                  (group, 100.0 * used / capacity)):
                    escalated.append(instance_uuid)
                    used -= size
        return escalated
