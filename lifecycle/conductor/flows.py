"""The conductor's placements as flows of idempotent tasks.

A conductor killed in the middle of a build or an unshelve resumes the flow
when it starts again: the hosts chosen are persisted, a claim the instance
already holds is the one used (claims are idempotent per host), and asking
a compute host again to unshelve an instance it already runs is a no-op
there. The owner of every task is the
:class:`~lifecycle.conductor.manager.ConductorManager`.
"""

import oslo_messaging as messaging
from oslo_log import log as logging

from lifecycle import context as lc_context
from lifecycle import states
from lifecycle.conf import CONF
from lifecycle.flows import engine as flow_engine

LOG = logging.getLogger(__name__)


class _Task(flow_engine.LifecycleTask):
    @property
    def conductor(self):
        return self.owner

    @staticmethod
    def context(request_context: dict | None):
        """The request's context (stored as its dict, for the RPC calls and
        notifications on the user's behalf)."""
        return lc_context.RequestContext.from_dict(request_context or {})


class SelectDestinations(_Task):
    """Candidate hosts, best first (persisted: a resumed flow tries the
    same hosts)."""
    NAME = 'select_destinations'
    default_provides = 'candidates'

    def execute(self, instance_uuid: str, request_spec: dict) -> list[str]:
        instance = self.conductor.db.instance_get(instance_uuid)
        return list(self.conductor.scheduler.select_destinations(
            instance, request_spec))


class ClaimAndBuild(_Task):
    NAME = 'claim_and_build'
    default_provides = 'host'

    def execute(self, instance_uuid: str, candidates: list[str],
                request_context: dict | None) -> str | None:
        conductor = self.conductor
        instance = conductor.db.instance_get(instance_uuid)
        if instance.task_state != states.SCHEDULING:
            # Handed to its host by the interrupted run.
            return instance.claimed_host
        host = instance.claimed_host or conductor._claim_first_fit(
            instance, candidates)
        if host is None:
            return None
        conductor.db.instance_update(
            instance_uuid, {'task_state': states.SPAWNING},
            expected_task_state=states.SCHEDULING, action='spawn')
        conductor.compute.build_and_run_instance(
            self.context(request_context), host, instance_uuid)
        return host


class RecordNoHostForBuild(_Task):
    NAME = 'record_no_host'

    def execute(self, instance_uuid: str, request_spec: dict,
                host: str | None) -> None:
        if host is not None:
            return
        conductor = self.conductor
        instance = conductor.db.instance_get(instance_uuid)
        if instance.task_state != states.SCHEDULING:
            return  # recorded by the interrupted run
        conductor._no_valid_host(
            instance_uuid,
            conductor.scheduler.explain(instance, request_spec),
            {'vm_state': states.ERROR, 'task_state': None})


def build_flow(conductor):
    return flow_engine.linear('build', conductor, [
        SelectDestinations, ClaimAndBuild, RecordNoHostForBuild])


class UnshelveOnCandidates(_Task):
    """Claim a candidate and ask its compute host to unshelve; on failure
    give the claim back and try the next. Returns the host, or None with
    the reasons in the conductor's log and the flow's result."""
    NAME = 'unshelve_on_candidates'
    default_provides = ('host', 'failures')

    def execute(self, instance_uuid: str, request_spec: dict,
                candidates: list[str], request_context: dict | None
                ) -> tuple:
        conductor = self.conductor
        instance = conductor.db.instance_get(instance_uuid)
        if instance.task_state != states.UNSHELVING:
            return instance.host, []  # finished by the interrupted run
        failures = []
        order = list(candidates)
        if instance.claimed_host:
            # Claimed by the interrupted run: that host first (again).
            order = [instance.claimed_host] + [
                h for h in order if h != instance.claimed_host]
        for host in order:
            if conductor._claim_first_fit(instance, [host]) is None:
                failures.append('%s: not enough free capacity' % host)
                continue
            try:
                conductor.compute.unshelve_instance(
                    self.context(request_context), host, instance_uuid,
                    request_spec,
                    timeout=CONF.rpc_response_timeout)
                return host, failures
            except messaging.MessagingTimeout:
                conductor._give_up_on(instance_uuid, host)
                return None, None  # recorded; not a "no valid host"
            except Exception as e:  # the compute failed and cleaned up
                LOG.warning('Unshelve of instance %s on %s failed, trying '
                            'the next host: %s', instance_uuid, host, e)
                conductor._count('compute_failures')
                failures.append('%s: %s' % (host, e))
                conductor.db.release_claim(instance_uuid)
                conductor.db.instance_update(instance_uuid, {'host': None})
        return None, failures


class HandleNoHost(_Task):
    """No candidate took it: a recorded NoValidHost, or the transfer out of
    the storage group when ``[shelve] unshelve_fallback = transfer``."""
    NAME = 'handle_no_host'

    def execute(self, instance_uuid: str, request_spec: dict,
                host: str | None, failures: list | None,
                request_context: dict | None) -> None:
        if host is not None or failures is None:
            return
        conductor = self.conductor
        instance = conductor.db.instance_get(instance_uuid)
        if instance.task_state != states.UNSHELVING:
            return  # recorded by the interrupted run
        reason = conductor.scheduler.explain(instance, request_spec)
        if failures:
            reason = '%s Tried: %s.' % (reason, '; '.join(failures))
        if (CONF.shelve.unshelve_fallback == 'transfer' and
                instance.system_metadata.get('shelved_disk') and
                not request_spec.get('requested_host')):
            conductor._transfer_and_unshelve(self.context(request_context),
                                             instance, request_spec, reason)
            return
        conductor._no_valid_host(instance_uuid, reason,
                                 {'task_state': None, 'host': None})


def unshelve_flow(conductor):
    return flow_engine.linear('conductor_unshelve', conductor, [
        SelectDestinations, UnshelveOnCandidates, HandleNoHost])


FACTORIES = {'build': build_flow, 'unshelve': unshelve_flow}

