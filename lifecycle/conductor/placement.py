"""Placing an instance that has no host: claims, the hand-over to a compute
host, and what a placement that found no host records.

The conductor's flows (conductor/flows.py) are built from these parts; the
endpoints of :class:`~lifecycle.conductor.manager.ConductorManager` only run
the flows. Every step can run again after a crash of the conductor: claims
are idempotent per host, and a compute host asked again to unshelve an
instance it already runs does nothing.
"""

import collections
import datetime
import threading
import time

import oslo_messaging as messaging
from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import exception
from lifecycle import names
from lifecycle import states
from lifecycle.compute import rpcapi as compute_rpcapi
from lifecycle.conductor import scheduler as scheduler_mod
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import models

LOG = logging.getLogger(__name__)

#: Seconds between reads of an instance whose unshelve a host accepted.
AWAIT_POLL_INTERVAL = 0.5

#: What :meth:`Placement.unshelve_on` returns when the compute host ended
#: the unshelve itself (its fault is recorded; no other host may be tried).
ENDED = 'ended'


class Run:
    """One run of a conductor flow: the conductor's placement, and the
    instance as the run last read it (as compute's ``FlowRun``: the
    endpoint hands over the row it read under the placement lock, the
    tasks that change nothing pass it on; the claims and the conditional
    updates decide what must not race, never this copy). In memory only."""

    def __init__(self, placement: 'Placement',
                 instance: models.Instance | None = None) -> None:
        self.placement = placement
        self.instance = instance


class Placement:
    """Claims and hand-overs for one conductor; counts what happens in
    ``stats`` (claims, retries, timeouts, ...), which the benchmarks and
    tests read."""

    def __init__(self, db: db_api.Database,
                 compute: compute_rpcapi.ComputeAPI,
                 scheduler: scheduler_mod.Scheduler) -> None:
        self.db = db
        self.compute = compute
        self.scheduler = scheduler
        self._stats_lock = threading.Lock()
        self.stats: collections.Counter = collections.Counter()

    def count(self, event: str) -> None:
        with self._stats_lock:
            self.stats[event] += 1

    def record_no_valid_host(self, instance_uuid: str, reason: str,
                             values: dict) -> None:
        """The fault users see, then ``values`` (the task ended)."""
        self.count('no_valid_host')
        error = exception.NoValidHost(reason=reason)
        LOG.warning('Instance %s: %s', instance_uuid, error.format_message())
        self.db.instance_update(instance_uuid, values,
                                fault=db_api.Fault.from_exception(error))

    def claim_first_fit(self, instance: models.Instance,
                        candidates: list[str]) -> str | None:
        """The first candidate whose capacity the instance could claim."""
        for host in candidates:
            try:
                self.db.claim(instance.uuid, host)
                self.count('claims')
                return host
            except exception.ClaimFailed as e:
                self.count('claim_retries')
                # Another request took the capacity after the host was
                # selected: a scheduling retry, not an error.
                LOG.debug('Retrying instance %s: %s', instance.uuid,
                          e.format_message())
        return None

    def unshelve_on_candidates(self, context, instance_uuid: str,
                               request_spec: dict, candidates: list[str],
                               instance: models.Instance | None = None
                               ) -> tuple[str | None, list[str] | None]:
        """Claim a candidate and have its compute host unshelve; when the
        host did not start or failed, the claim is back and the next is
        tried. Returns (host, reasons of the hosts that did not): host None
        when none did; reasons None when a host ended the operation with
        its own fault (not a "no valid host"). ``instance``: the row as the
        caller read it (else it is read)."""
        if instance is None:
            instance = self.db.instance_get(instance_uuid, faults=False)
        failures: list[str] = []
        tried = set()
        if (instance.task_state == states.SPAWNING and
                instance.claimed_host):
            # Accepted by a host before the conductor was interrupted.
            host = instance.claimed_host
            outcome = self.await_unshelve(instance_uuid, host)
            if outcome is None:
                return host, failures
            if outcome == ENDED:
                return None, None
            failures.append('%s: %s' % (host, outcome))
            tried.add(host)
            instance = self.db.instance_get(instance_uuid, faults=False)
        if instance.task_state != states.UNSHELVING:
            return instance.host, []  # finished by the interrupted run
        order = [h for h in candidates if h not in tried]
        if instance.claimed_host:
            # Claimed by the interrupted run: that host first (again).
            order = [instance.claimed_host] + [
                h for h in order if h != instance.claimed_host]
        for host in order:
            if self.claim_first_fit(instance, [host]) is None:
                failures.append('%s: not enough free capacity' % host)
                continue
            outcome = self.unshelve_on(context, host, instance_uuid,
                                       request_spec)
            if outcome is None:
                return host, failures
            if outcome == ENDED:
                return None, None
            failures.append('%s: %s' % (host, outcome))
        return None, failures

    def unshelve_on(self, context, host: str, instance_uuid: str,
                    request_spec: dict) -> str | None:
        """Ask ``host`` (claimed already) to unshelve and see it through.

        Returns None when the instance runs there, :data:`ENDED` when the
        host ended the operation itself (its fault is recorded), else why
        the host did not do it (the claim is back; try the next host).

        The call waits ``rpc_response_timeout``. A host that has not
        answered by then either never started (the request was lost, the
        host is dead or busy): its claim is taken back, conditionally on
        the instance still being ``unshelving``, and the next host is
        tried; or it has accepted the work (``spawning``, see
        compute/flows.py ``AcceptUnshelve``), and then the conductor waits
        for the outcome however long the disk takes (a full offload's
        download), not one RPC timeout.
        """
        try:
            self.compute.unshelve_instance(
                context, host, instance_uuid, request_spec,
                timeout=CONF.rpc_response_timeout)
            return None
        except messaging.MessagingTimeout:
            pass
        except Exception as e:  # the compute failed and cleaned up
            LOG.warning('Unshelve of instance %s on %s failed, trying the '
                        'next host: %s', instance_uuid, host, e)
            self.count('compute_failures')
            self.db.release_claim(instance_uuid, only_host=host,
                                  values={'host': None})
            return exception.message_of(e)
        self.count('timeouts')
        if self.db.release_claim(
                instance_uuid, only_host=host,
                only_task_state=states.UNSHELVING,
                values={'host': None}) is not None:
            reason = ('did not start the unshelve within %d s' %
                      CONF.rpc_response_timeout)
            LOG.warning('Instance %s: compute host %s %s; trying the next '
                        'host', instance_uuid, host, reason)
            return reason
        return self.await_unshelve(instance_uuid, host)

    def await_unshelve(self, instance_uuid: str, host: str) -> str | None:
        """Wait for an unshelve ``host`` has accepted; returns as
        :meth:`unshelve_on`. Stops waiting (the host's own flow record
        finishes the work, when it runs again if need be) when the host
        stops reporting or after ``[shelve] transfer_timeout``."""
        LOG.info('Instance %s: compute host %s is unshelving it; waiting '
                 'for the outcome', instance_uuid, host)
        deadline = time.monotonic() + CONF.shelve.transfer_timeout
        while True:
            try:
                instance = self.db.instance_get(instance_uuid, faults=False)
            except exception.InstanceNotFound:
                return ENDED
            if instance.claimed_host != host:
                # The host gave up and recorded why.
                return ENDED
            if (instance.vm_state == states.ACTIVE and
                    instance.task_state is None):
                return None
            if instance.task_state == states.UNSHELVING:
                # The host's accept was reverted: it failed there.
                if self.db.release_claim(
                        instance_uuid, only_host=host,
                        only_task_state=states.UNSHELVING,
                        values={'host': None}) is not None:
                    self.count('compute_failures')
                    return 'failed (see the log of %s)' % host
                continue
            if instance.task_state != states.SPAWNING:
                return ENDED
            if not self.host_up(host):
                LOG.warning('Instance %s: compute host %s stopped reporting '
                            'while unshelving it; it finishes or reverts '
                            'the unshelve when it runs again',
                            instance_uuid, host)
                return ENDED
            if time.monotonic() > deadline:
                LOG.warning('Instance %s: compute host %s still unshelving '
                            'after [shelve] transfer_timeout (%d s); no '
                            'longer waiting for it', instance_uuid, host,
                            CONF.shelve.transfer_timeout)
                return ENDED
            time.sleep(AWAIT_POLL_INTERVAL)

    def host_up(self, host: str) -> bool:
        try:
            node = self.db.compute_node_get(host)
        except exception.ComputeHostNotFound:
            return False
        cutoff = timeutils.utcnow() - datetime.timedelta(
            seconds=CONF.compute.service_down_time)
        return node.last_seen_at is not None and node.last_seen_at >= cutoff

    def transfer_out_of_group(self, context, instance: models.Instance,
                              reason: str) -> bool:
        """No host of the storage group fits: a host that reaches the
        retained disk uploads it (a full offload that leaves the instance
        ``unshelving``). True once the disk is an image; False when the
        transfer ended otherwise (its fault recorded, or left to the host
        that works on it)."""
        LOG.info('Instance %s: %s Transferring it out of its storage group '
                 '([shelve] unshelve_fallback = transfer)', instance.uuid,
                 reason)
        self.count('transfers')
        hosts = self.scheduler.hosts_reaching_disk(instance)
        if not hosts:
            self.record_no_valid_host(
                instance.uuid, reason + ' No host can reach the retained '
                'disk to transfer it.', {'task_state': None, 'host': None})
            return False
        self.db.instance_update(
            instance.uuid, {'task_state': states.SHELVING_IMAGE_UPLOADING},
            expected_task_state=states.UNSHELVING, action='unshelve')
        try:
            self.compute.offload_retained_disk(
                context, hosts[0], instance.uuid,
                next_task_state=states.UNSHELVING,
                timeout=CONF.rpc_response_timeout)
        except messaging.MessagingTimeout:
            # A large disk takes longer than one RPC timeout: follow the
            # upload in the database instead.
            return self.await_transfer(instance.uuid, hosts[0])
        except Exception as e:  # the compute recorded the fault
            LOG.warning('Transfer of instance %s failed: %s', instance.uuid,
                        e)
            return False
        return True

    def await_transfer(self, instance_uuid: str, host: str) -> bool:
        """Wait for the upload ``host`` was asked for: True once it is done
        (the compute moved the instance on to ``unshelving``), False when
        it failed there (fault recorded), the host stopped reporting, or
        ``[shelve] transfer_timeout`` passed (the stuck-task check ends a
        transfer nobody works on)."""
        deadline = time.monotonic() + CONF.shelve.transfer_timeout
        while True:
            try:
                instance = self.db.instance_get(instance_uuid, faults=False)
            except exception.InstanceNotFound:
                return False
            if instance.task_state == states.UNSHELVING:
                return True
            if instance.task_state != states.SHELVING_IMAGE_UPLOADING:
                return False
            if not self.host_up(host):
                LOG.warning('Instance %s: compute host %s stopped reporting '
                            'while transferring its disk', instance_uuid,
                            host)
                return False
            if time.monotonic() > deadline:
                LOG.warning('Instance %s: transfer by %s not done after '
                            '[shelve] transfer_timeout (%d s); no longer '
                            'waiting for it', instance_uuid, host,
                            CONF.shelve.transfer_timeout)
                return False
            time.sleep(AWAIT_POLL_INTERVAL)

    def reaching_hosts_or_fault(self, instance: models.Instance,
                                what: str) -> list[str]:
        """Up hosts that see the retained disk, original host first; none:
        a NoValidHost fault naming ``what`` could not be done."""
        hosts = self.scheduler.hosts_reaching_disk(instance)
        if not hosts:
            self.record_no_valid_host(
                instance.uuid, 'No up host of storage group %s can %s.' % (
                    instance.system_metadata.get(
                        names.SHELVED_STORAGE_GROUP), what),
                {'task_state': None})
        return hosts
