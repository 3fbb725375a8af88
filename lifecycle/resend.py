"""Sending accepted requests again: a 202 means the operation happens.

The API records every request it accepts in the transaction that sets the
instance's task_state, and every hand-over between the services replaces it
(``lifecycle/db/requests.py``); the change that moves the task on removes
it. What the table holds is therefore exactly what was promised and not yet
started or handed on. A request is lost only with its message: a process
killed before it started the work (an operation it started is a persisted
flow, resumed by that process), a message bus restarted with the message in
a queue, an API killed between its commit and its cast. So:

* a service that starts sends its own accepted requests again, once its
  interrupted flows have been resumed (:meth:`Resender.resend_own`);
* the conductor's periodic check sends again any request not started
  within ``[DEFAULT] request_resend_timeout``, and ends at once, with a
  fault, one whose compute host is down (:meth:`Resender.resend_stale`).

A request with an unfinished flow is being worked on and never sent again.
A request sent twice is harmless: the second copy finds its task moved on
and is dropped (``ComputeManager._still_wanted`` and the conductor's
equivalent). The stuck-task check stays as the last resort for a task with
neither a request nor a flow.
"""

import datetime
import json

from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import context as lc_context
from lifecycle import exception
from lifecycle.compute import rpcapi as compute_rpcapi
from lifecycle.conductor import rpcapi as conductor_rpcapi
from lifecycle.conductor import stuck
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import models
from lifecycle.flows import engine as flow_engine

LOG = logging.getLogger(__name__)

# What may be sent again, per service (a row names its method; only these
# are ever called).
COMPUTE_METHODS = frozenset((
    'build_and_run_instance', 'start_instance', 'stop_instance',
    'shelve_instance', 'shelve_offload_instance', 'unshelve_instance',
    'offload_retained_disk', 'terminate_instance'))
CONDUCTOR_METHODS = frozenset((
    'build_instance', 'unshelve_instance', 'delete_offloaded_instance',
    'offload_retained_disk'))


class Resender:
    def __init__(self, db: db_api.Database,
                 compute: compute_rpcapi.ComputeAPI,
                 conductor: conductor_rpcapi.ConductorAPI) -> None:
        self.db = db
        self.compute = compute
        self.conductor = conductor
        # Reads every service's unfinished flows; runs none.
        self.flows = flow_engine.FlowRunner(db, 'resend', {})

    def resend_own(self, service: str, host: str | None = None) -> list[str]:
        """At the start of ``service`` (of compute ``host``): send its
        accepted requests again; returns their instances."""
        rows = self.db.accepted_requests(service=service, host=host)
        return self._resend(rows, check_host=False)

    def resend_stale(self) -> list[str]:
        """Periodic: the requests not started within
        ``request_resend_timeout``."""
        cutoff = timeutils.utcnow() - datetime.timedelta(
            seconds=CONF.request_resend_timeout)
        rows = self.db.accepted_requests(dispatched_before=cutoff)
        return self._resend(rows, check_host=True)

    def _resend(self, rows: list[models.AcceptedRequest],
                check_host: bool) -> list[str]:
        if not rows:
            return []
        in_flight = self.flows.instances_in_flight()
        sent = []
        for row in rows:
            if row.instance_uuid in in_flight:
                continue
            try:
                if self._resend_one(row, check_host):
                    sent.append(row.instance_uuid)
            except Exception:  # the next check tries again
                LOG.exception('Could not send %s of instance %s again',
                              row.method, row.instance_uuid)
        return sent

    def _resend_one(self, row: models.AcceptedRequest,
                    check_host: bool) -> bool:
        try:
            instance = self.db.instance_get(row.instance_uuid)
        except exception.InstanceNotFound:
            return False
        if instance.task_state != row.task_state:
            return False  # moved on since the read
        if check_host and row.service == 'compute' and not self._up(row.host):
            # Nobody else can do it: the instance is that host's.
            stuck.end_task(self.db, instance,
                           'host %s, which was to carry out its request '
                           '(%s), is down' % (row.host, row.method),
                           'HostDown')
            return False
        if not self.db.accepted_request_dispatched(row.instance_uuid,
                                                   row.task_state):
            return False
        context = lc_context.RequestContext.from_dict(json.loads(row.context))
        args = json.loads(row.args)
        LOG.warning('Instance %s: sending %s to %s again (accepted at %s, '
                    'task %s not started)', row.instance_uuid, row.method,
                    row.host or 'the conductor', row.accepted_at,
                    row.task_state)
        if row.service == 'compute' and row.method in COMPUTE_METHODS:
            getattr(self.compute, row.method)(context, row.host,
                                              row.instance_uuid, **args)
        elif row.service == 'conductor' and row.method in CONDUCTOR_METHODS:
            getattr(self.conductor, row.method)(context, row.instance_uuid,
                                                **args)
        else:
            LOG.error('Instance %s: accepted request %s of %s is unknown to '
                      'this release; not sent', row.instance_uuid,
                      row.method, row.service)
            return False
        return True

    def _up(self, host: str | None) -> bool:
        try:
            node = self.db.compute_node_get(host)
        except exception.ComputeHostNotFound:
            return False
        if node.last_seen_at is None:
            return False
        age = timeutils.utcnow(with_timezone=False) - node.last_seen_at
        return age.total_seconds() <= CONF.compute.service_down_time
