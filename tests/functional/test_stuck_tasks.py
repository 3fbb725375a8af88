"""A request nobody works on ends with a fault, and changes nothing.

The compute service of host-a1 stops taking requests (its RPC server is
stopped for real; the rest of the deployment runs on): a shelve accepted by
the API is never started by any service. After ``[DEFAULT]
stuck_task_timeout`` the conductor's check ends the task with a fault; the
instance is back in ACTIVE, its guest still runs and its claim is held. An
instance whose operation *has* a flow record is never touched by the check.
"""

import time

from lifecycle import states
from tests.functional.conftest import disk_of


def _compute_of(aio, host: str):
    return next(svc for svc in aio.services if svc.server == host)


def test_a_lost_request_ends_with_a_fault(make_aio, client_for):
    aio = make_aio(extra={(None, 'stuck_task_timeout'): 2,
                          (None, 'stuck_task_interval'): 1})
    client = client_for(aio.url)
    server_id = client.boot('lost', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    used = client.hypervisor('host-a1')['memory_mb_used']

    compute = _compute_of(aio, 'host-a1')
    compute.stop()
    aio.services.remove(compute)
    status, body = client.action(server_id, {'shelve': None})
    assert status == 202, body
    assert client.server(server_id)['OS-EXT-STS:task_state'] == 'shelving'

    server = client.settle(server_id, timeout=30)
    assert server['status'] == 'ACTIVE'
    # Nova's API shows faults in ERROR only: read the record.
    deadline = time.monotonic() + 10
    while not (faults := aio.db.instance_get(server_id).faults):
        assert time.monotonic() < deadline, 'no fault recorded'
        time.sleep(0.1)
    assert 'Task shelving ended' in faults[0].message
    assert aio.driver.get_power_state(server_id) == states.RUNNING
    assert aio.driver.get_disk_paths(server_id) == [disk_of(aio, server_id)]
    assert client.hypervisor('host-a1')['memory_mb_used'] == used
    # Refused no more: the next request is accepted.
    assert client.action(server_id, {'os-stop': None})[0] == 202


def test_an_operation_in_progress_is_left_alone(make_aio, client_for):
    """A flow record (an operation a service started) keeps the check
    away, however old the task."""
    aio = make_aio(extra={(None, 'stuck_task_timeout'): 1,
                          (None, 'stuck_task_interval'): 1})
    client = client_for(aio.url)
    server_id = client.boot('busy', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    compute = _compute_of(aio, 'host-a1')
    compute.stop()
    aio.services.remove(compute)
    aio.db.instance_update(server_id, {'task_state': states.SHELVING})
    runner = compute.manager.flows
    book = _started_flow(runner, server_id)
    try:
        time.sleep(4)  # several checks, each past the timeout
        assert aio.db.instance_get(server_id).task_state == states.SHELVING
    finally:
        runner._call('destroy_logbook', book.uuid)


def _started_flow(runner, instance_uuid: str):
    """The record a compute leaves when it dies inside a shelve."""
    from taskflow.persistence import models as flow_models
    book = flow_models.LogBook('shelve:%s' % instance_uuid)
    book.meta = {'owner': runner.owner, 'kind': 'shelve',
                 'instance_uuid': instance_uuid}
    runner._call('save_logbook', book)
    return book
