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

import oslo_messaging as messaging
from oslo_concurrency import lockutils
from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import context as lc_context
from lifecycle import exception
from lifecycle import states
from lifecycle import storage_groups
from lifecycle.compute import rpcapi as compute_rpcapi
from lifecycle.conductor import flows as conductor_flows
from lifecycle.conductor import placement as placement_mod
from lifecycle.conductor import stuck
from lifecycle.conductor import scheduler as scheduler_mod
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import models
from lifecycle.flows import engine as flow_engine
from lifecycle import names

LOG = logging.getLogger(__name__)


def placement_lock(instance_uuid: str):
    return lockutils.lock('placement-%s' % instance_uuid, fair=True)


class ConductorManager:
    target = messaging.Target(version='1.1')  # see conductor/rpcapi.py

    def __init__(self, db: db_api.Database,
                 compute: compute_rpcapi.ComputeAPI,
                 scheduler: scheduler_mod.Scheduler,
                 host: str = 'conductor') -> None:
        self.db = db
        self.compute = compute
        self.scheduler = scheduler
        self.placement = placement_mod.Placement(db, compute, scheduler)
        self.flows = flow_engine.FlowRunner(db, 'conductor:%s' % host,
                                            conductor_flows.FACTORIES)

    @property
    def stats(self) -> collections.Counter:
        """What the placements did (claims, retries, timeouts, ...)."""
        return self.placement.stats

    def _run_flow(self, kind: str, context, instance_uuid: str,
                  request_spec: dict, instance=None) -> None:
        """``instance``: the row just read under the placement lock."""
        self.flows.run(kind, placement_mod.Run(self.placement, instance), {
            'instance_uuid': instance_uuid, 'request_spec': request_spec,
            'request_context': db_api.stored_context(context)})

    def _still_wanted(self, instance_uuid: str, task_state: str,
                      method: str) -> models.Instance | None:
        """The instance, while its task is the one this request is for; a
        request sent twice (lifecycle/resend.py) finds its task moved on,
        or already placed with a claim, and is dropped (None)."""
        try:
            instance = self.db.instance_get(instance_uuid, faults=False)
        except exception.InstanceNotFound:
            return None
        if instance.task_state == task_state and (
                instance.claimed_host is None or
                method not in ('build_instance', 'unshelve_instance')):
            return instance
        LOG.info('Instance %s: %s dropped: its task is %s (claim on %s), '
                 'not %s (a request sent twice)', instance_uuid, method,
                 instance.task_state, instance.claimed_host, task_state)
        return None

    def build_instance(self, context, instance_uuid: str,
                       request_spec: dict) -> None:
        # One placement per instance at a time in this conductor: a copy of
        # the request waits for the first, then finds its task moved on.
        with placement_lock(instance_uuid):
            instance = self._still_wanted(instance_uuid, states.SCHEDULING,
                                          'build_instance')
            if instance is not None:
                self._run_flow('build', context, instance_uuid, request_spec,
                               instance)

    def unshelve_instance(self, context, instance_uuid: str,
                          request_spec: dict) -> None:
        with placement_lock(instance_uuid):
            instance = self._still_wanted(instance_uuid, states.UNSHELVING,
                                          'unshelve_instance')
            if instance is not None:
                self._run_flow('unshelve', context, instance_uuid,
                               request_spec, instance)

    def init_host(self) -> None:
        """Before taking requests: resume the placements a crash of this
        conductor interrupted (a failure ends them with a fault)."""
        for book in self.flows.unfinished():
            instance_uuid = book.meta.get('instance_uuid')
            try:
                self.flows.resume(book, placement_mod.Run(self.placement))
            except Exception as e:
                LOG.exception('Resumed %s of instance %s failed',
                              book.meta.get('kind'), instance_uuid)
                self._record_failure(instance_uuid, e)

    def _record_failure(self, instance_uuid: str, error: Exception) -> None:
        fault = db_api.Fault.from_exception(error)
        with contextlib.suppress(exception.InstanceNotFound):
            if self.db.release_claim(instance_uuid,
                                     values={'task_state': None},
                                     fault=fault) is None:
                self.db.instance_update(instance_uuid, {'task_state': None},
                                        fault=fault)

    def delete_offloaded_instance(self, context, instance_uuid: str) -> None:
        """The retained disk lives on the storage group: any up host of the
        group can remove it, the original host preferred."""
        if not self._still_wanted(instance_uuid, states.DELETING,
                                  'delete_offloaded_instance'):
            return
        instance = self.db.instance_get(instance_uuid)
        hosts = self.placement.reaching_hosts_or_fault(
            instance, 'delete the retained disk')
        if hosts:
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
        if not self._still_wanted(instance_uuid,
                                  states.SHELVING_IMAGE_UPLOADING,
                                  'offload_retained_disk'):
            return
        instance = self.db.instance_get(instance_uuid)
        hosts = self.placement.reaching_hosts_or_fault(
            instance, 'upload the retained disk')
        if hosts:
            self.compute.offload_retained_disk(context, hosts[0],
                                               instance_uuid)

    def _escalate(self, context, instance_uuid: str, why: str) -> bool:
        try:
            self.db.instance_update(
                instance_uuid,
                {'task_state': states.SHELVING_IMAGE_UPLOADING},
                expected_vm_state=[states.SHELVED_OFFLOADED],
                expected_task_state=None, action='shelveOffload',
                request=db_api.Request.of(
                    states.SHELVING_IMAGE_UPLOADING, 'conductor',
                    'offload_retained_disk', context))
        except (exception.InstanceInvalidState, exception.InstanceNotFound):
            return False  # a request got there first
        LOG.info('Escalating instance %s to a full offload: %s',
                 instance_uuid, why)
        self.placement.count('escalations')
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
            shelved_at = instance.system_metadata.get(names.SHELVED_AT)
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
            usage, sizes = storage_groups.figures(self.db, group)
            capacity, free = usage['capacity_bytes'], usage['free_bytes']
            if not capacity or free is None:
                LOG.warning(
                    'Storage group %s: usage unknown (this host does not '
                    'see its storage and no live host of the group reported '
                    'it within 3 x [compute] storage_report_interval); the '
                    'storage watermarks are not applied to it', group)
                continue
            LOG.debug('Storage group %s: %d of %d bytes free (%s%s)', group,
                      free, capacity, usage['usage_source'],
                      ' by %s at %s' % (usage['usage_reported_by'],
                                        usage['usage_reported_at'])
                      if usage['usage_reported_by'] else '')
            # Disks being uploaded (and their staging copies) are about to
            # go: counting them would escalate more than needed.
            used = capacity - free - sum(
                sizes.get(instance_uuid, 0)
                for instance_uuid, in_group in uploading if in_group == group)
            if used <= high * capacity:
                continue
            for instance_uuid, _group, _at in (r for r in retained
                                                if r[1] == group):
                if used <= low * capacity:
                    break
                if instance_uuid in done:
                    continue
                size = sizes.get(instance_uuid, 0)
                if self._escalate(context, instance_uuid,
                                  'storage group %s is %.0f%% full' %
                                  (group, 100.0 * used / capacity)):
                    escalated.append(instance_uuid)
                    used -= size
        return escalated
