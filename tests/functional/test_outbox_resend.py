"""The conductor's check of accepted requests nobody started.

In one all-in-one (test driver): a request recorded with its task_state
but never sent -- what an API killed between its commit and its cast
leaves -- is sent again after ``[DEFAULT] request_resend_timeout`` and
carried out; one whose compute host is down is ended at once with a fault
instead of waiting for ``stuck_task_timeout`` (30 min, as by default); and
a request that arrives twice is carried out once.
"""

import time

from lifecycle import context as lc_context
from lifecycle import states
from lifecycle.db import api as db_api

QUICK = {(None, 'request_resend_timeout'): 1,
         (None, 'request_resend_interval'): 1,
         (None, 'stuck_task_timeout'): 1800}


def _compute_of(aio, host: str):
    return next(svc for svc in aio.services if svc.server == host)


def _accept_without_sending(aio, server_id: str, host: str) -> None:
    """The API's half of a shelve: task_state and request, one commit."""
    aio.db.instance_update(
        server_id, {'task_state': states.SHELVING},
        expected_vm_state=[states.ACTIVE], expected_task_state=None,
        request=db_api.Request.of(states.SHELVING, 'compute',
                                  'shelve_instance', None, host=host),
        action='shelve')


def _fault(aio, server_id: str, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while not (faults := aio.db.instance_get(server_id).faults):
        assert time.monotonic() < deadline, 'no fault recorded'
        time.sleep(0.1)
    return faults[0]


def test_a_request_never_sent_is_sent_again(make_aio, client_for):
    aio = make_aio(extra=QUICK)
    client = client_for(aio.url)
    server_id = client.boot('unsent', host='host-a1')
    client.wait(server_id, 'ACTIVE')

    _accept_without_sending(aio, server_id, 'host-a1')
    assert client.server(server_id)['OS-EXT-STS:task_state'] == 'shelving'
    server = client.wait(server_id, 'SHELVED_OFFLOADED', timeout=20)
    assert server['OS-EXT-STS:task_state'] is None
    assert aio.db.accepted_requests() == []
    assert aio.driver.get_power_state(server_id) == states.NOSTATE


def test_a_request_for_a_host_that_is_down_ends_at_once(make_aio,
                                                        client_for):
    aio = make_aio(extra={**QUICK, ('compute', 'service_down_time'): 2})
    client = client_for(aio.url)
    server_id = client.boot('orphaned', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    used = client.hypervisor('host-a1')['memory_mb_used']

    compute = _compute_of(aio, 'host-a1')
    compute.stop()  # RPC server and heartbeat
    aio.services.remove(compute)
    status, body = client.action(server_id, {'shelve': None})
    assert status == 202, body

    server = client.settle(server_id, timeout=20)
    assert server['status'] == 'ACTIVE'
    fault = _fault(aio, server_id)
    assert fault.details == 'HostDown', fault.message
    assert 'host host-a1' in fault.message
    assert 'shelve_instance' in fault.message
    assert aio.db.accepted_requests() == []
    # Nothing changed on the host: the guest runs, the claim is held.
    assert aio.driver.get_power_state(server_id) == states.RUNNING
    assert client.hypervisor('host-a1')['memory_mb_used'] == used


def test_a_request_sent_twice_is_carried_out_once(make_aio, client_for):
    aio = make_aio(extra=QUICK)
    client = client_for(aio.url)
    server_id = client.boot('twice', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    events = []
    manager = _compute_of(aio, 'host-a1').manager
    run_flow = manager._run_flow
    manager._run_flow = lambda kind, uuid, **store: (
        events.append(kind), run_flow(kind, uuid, **store))

    assert client.action(server_id, {'shelve': None})[0] == 202
    # The same message again, as a resend racing the original would.
    aio.compute_api.compute.shelve_instance(
        lc_context.get_admin_context(), 'host-a1', server_id)
    client.wait(server_id, 'SHELVED_OFFLOADED', timeout=20)
    time.sleep(1)  # the copy has had its turn
    assert events.count('shelve') == 1, events
    server = client.server(server_id)
    assert server['OS-EXT-STS:task_state'] is None
    assert aio.db.instance_get(server_id).faults == []
