"""Ending tasks nobody works on.

A request can be lost between the services: a cast dropped with a message
bus that restarted, a host that never received it. Its instance would keep
its task_state, and refuse every request, forever. The conductor's periodic
check finds instances whose task_state has not changed for ``[DEFAULT]
stuck_task_timeout`` seconds and that no service has an unfinished flow
for (a flow record means a service started the operation: only that
service, when it runs again, may finish or revert it), and ends the task
with a fault, back in the state the task started from.
"""

import datetime

from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import exception
from lifecycle import states
from lifecycle.db import api as db_api
from lifecycle.flows import engine as flow_engine

LOG = logging.getLogger(__name__)

# task_state -> the instance's values once the task is abandoned.
_BUILD = {'vm_state': states.ERROR, 'task_state': None}
_UNSHELVE = {'task_state': None, 'host': None}
# Tasks that hold a claim that must go with them.
_RELEASES_CLAIM = {states.SCHEDULING: _BUILD, states.SPAWNING: _BUILD,
                   states.UNSHELVING: _UNSHELVE}


def end_stuck_tasks(db: db_api.Database, flows: flow_engine.FlowRunner,
                    timeout: int) -> list[str]:
    """End the stuck tasks; returns the instances whose task was ended."""
    cutoff = timeutils.utcnow() - datetime.timedelta(seconds=timeout)
    candidates = db.instance_get_in_task_since(cutoff)
    if not candidates:
        return []
    in_flight = flows.instances_in_flight()
    ended = []
    for instance in candidates:
        if instance.uuid in in_flight:
            continue
        if end_task(db, instance, 'no service worked on it for %d s (its '
                    'request was lost)' % timeout, 'StuckTask'):
            ended.append(instance.uuid)
    return ended


def end_task(db: db_api.Database, instance, why: str, details: str) -> bool:
    """End the instance's task with a fault saying ``why``, back in the
    state the task started from; False when the task moved on meanwhile."""
    task = instance.task_state
    values = _RELEASES_CLAIM.get(task, {'task_state': None})
    if task == states.SPAWNING and (
            instance.vm_state == states.SHELVED_OFFLOADED):
        # An unshelve a host accepted (compute/flows.py AcceptUnshelve):
        # the instance stays offloaded, not in error as a failed build.
        values = _UNSHELVE
    message = ('Task %s ended: %s; the instance is back in %s.' %
               (task, why, values.get('vm_state', instance.vm_state)))
    fault = db_api.Fault(500, message, details=details)
    try:
        # The claim (if any), the state and the fault in one conditional
        # update; the task_state condition lets a late-starting operation
        # win.
        if (task not in _RELEASES_CLAIM or db.release_claim(
                instance.uuid, only_task_state=task,
                values=values, fault=fault) is None):
            db.instance_update(instance.uuid, values,
                               expected_task_state=task, action=task,
                               fault=fault)
    except (exception.InstanceInvalidState, exception.InstanceNotFound):
        return False  # it moved on meanwhile
    LOG.warning('Instance %s: %s', instance.uuid, message)
    return True
