"""The conductor's placements as flows of idempotent tasks.

A conductor killed in the middle of a build or an unshelve resumes the flow
when it starts again: the hosts chosen are persisted, a claim the instance
already holds is the one used (claims are idempotent per host), and asking
a compute host again to unshelve an instance it already runs is a no-op
there. Every task gets the conductor's
:class:`~lifecycle.conductor.placement.Placement` (database, scheduler,
compute RPC) in its constructor, through the
:class:`~lifecycle.conductor.placement.Run` of its flow.
"""

from oslo_log import log as logging

from lifecycle import context as lc_context
from lifecycle import names
from lifecycle import states
from lifecycle.conductor import placement as placement_mod
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.flows import engine as flow_engine

LOG = logging.getLogger(__name__)


class _Task(flow_engine.InstanceTask):
    def __init__(self, flow_name: str, run: placement_mod.Run | None,
                 **kwargs) -> None:
        super().__init__(flow_name, run, **kwargs)
        self.run = run
        self.placement = run.placement if run is not None else None
        self.db = self.placement.db if run is not None else None

    @staticmethod
    def context(request_context: dict | None):
        """The request's context (stored as its dict, for the RPC calls and
        notifications on the user's behalf)."""
        return lc_context.RequestContext.from_dict(request_context or {})


class SelectDestinations(_Task):
    """Candidate hosts, best first (persisted: a resumed flow tries the
    same hosts)."""
    NAME = 'select_destinations'
    KEEPS_INSTANCE = True
    default_provides = 'candidates'

    def execute(self, instance_uuid: str, request_spec: dict) -> list[str]:
        return list(self.placement.scheduler.select_destinations(
            self.instance(instance_uuid), request_spec))


class ClaimAndBuild(_Task):
    NAME = 'claim_and_build'
    default_provides = 'host'

    def execute(self, instance_uuid: str, candidates: list[str],
                request_context: dict | None) -> str | None:
        placement = self.placement
        instance = self.instance(instance_uuid)
        if instance.task_state != states.SCHEDULING:
            # Handed to its host by the interrupted run.
            return instance.claimed_host
        host = instance.claimed_host or placement.claim_first_fit(
            instance, candidates)
        if host is None:
            return None
        context = self.context(request_context)
        placement.db.instance_update(
            instance_uuid, {'task_state': states.SPAWNING},
            expected_task_state=states.SCHEDULING, action='spawn',
            request=db_api.Request.of(states.SPAWNING, 'compute',
                                      'build_and_run_instance', context,
                                      host=host))
        placement.compute.build_and_run_instance(context, host,
                                                 instance_uuid)
        return host


class RecordNoHostForBuild(_Task):
    NAME = 'record_no_host'

    def execute(self, instance_uuid: str, request_spec: dict,
                host: str | None) -> None:
        if host is not None:
            return
        placement = self.placement
        instance = placement.db.instance_get(instance_uuid, faults=False)
        if instance.task_state != states.SCHEDULING:
            return  # recorded by the interrupted run
        placement.record_no_valid_host(
            instance_uuid,
            placement.scheduler.explain(instance, request_spec),
            {'vm_state': states.ERROR, 'task_state': None})


def build_flow(run: placement_mod.Run | None):
    return flow_engine.linear('build', run, [
        SelectDestinations, ClaimAndBuild, RecordNoHostForBuild])


class UnshelveOnCandidates(_Task):
    """See :meth:`~lifecycle.conductor.placement.Placement.
    unshelve_on_candidates`."""
    NAME = 'unshelve_on_candidates'
    default_provides = ('host', 'failures')

    def execute(self, instance_uuid: str, request_spec: dict,
                candidates: list[str], request_context: dict | None
                ) -> tuple:
        return self.placement.unshelve_on_candidates(
            self.context(request_context), instance_uuid, request_spec,
            candidates, instance=self.instance(instance_uuid))


class HandleNoHost(_Task):
    """No candidate took it: a recorded NoValidHost, or, when ``[shelve]
    unshelve_fallback = transfer``, the transfer out of the storage group
    and a placement on any host, in this task (one persisted flow: no
    second flow started from inside this one)."""
    NAME = 'handle_no_host'

    def execute(self, instance_uuid: str, request_spec: dict,
                host: str | None, failures: list | None,
                request_context: dict | None) -> None:
        if host is not None or failures is None:
            return
        placement = self.placement
        instance = placement.db.instance_get(instance_uuid, faults=False)
        if instance.task_state == states.SHELVING_IMAGE_UPLOADING:
            # Interrupted while a host uploads the disk: follow it.
            hosts = placement.scheduler.hosts_reaching_disk(instance)
            if not hosts or not placement.await_transfer(instance_uuid,
                                                         hosts[0]):
                return
            self._place_anywhere(instance_uuid, request_spec,
                                 request_context)
            return
        if instance.task_state != states.UNSHELVING:
            return  # recorded by the interrupted run
        reason = placement.scheduler.explain(instance, request_spec)
        if failures:
            reason = '%s Tried: %s.' % (reason, '; '.join(failures))
        if (CONF.shelve.unshelve_fallback == 'transfer' and
                instance.system_metadata.get(names.SHELVED_DISK) and
                not request_spec.get('requested_host')):
            if placement.transfer_out_of_group(
                    self.context(request_context), instance, reason):
                self._place_anywhere(instance_uuid, request_spec,
                                     request_context)
            return
        placement.record_no_valid_host(instance_uuid, reason,
                                       {'task_state': None, 'host': None})

    def _place_anywhere(self, instance_uuid: str, request_spec: dict,
                        request_context: dict | None) -> None:
        """The disk is an image now: any host may unshelve it."""
        placement = self.placement
        instance = placement.db.instance_get(instance_uuid, faults=False)
        candidates = list(placement.scheduler.select_destinations(
            instance, request_spec))
        host, failures = placement.unshelve_on_candidates(
            self.context(request_context), instance_uuid, request_spec,
            candidates)
        if host is not None or failures is None:
            return
        reason = placement.scheduler.explain(
            placement.db.instance_get(instance_uuid, faults=False),
            request_spec)
        if failures:
            reason = '%s Tried: %s.' % (reason, '; '.join(failures))
        placement.record_no_valid_host(instance_uuid, reason,
                                       {'task_state': None, 'host': None})


def unshelve_flow(run: placement_mod.Run | None):
    return flow_engine.linear('conductor_unshelve', run, [
        SelectDestinations, UnshelveOnCandidates, HandleNoHost])


FACTORIES = {'build': build_flow, 'unshelve': unshelve_flow}
