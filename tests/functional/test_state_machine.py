"""Every refused transition answers 409 in Nova's error shape and changes
nothing: for each state an instance can rest in, and while a task runs."""

import pytest

ACTIONS = {'shelve': {'shelve': None},
           'shelveOffload': {'shelveOffload': None},
           'unshelve': {'unshelve': None},
           'os-start': {'os-start': None},
           'os-stop': {'os-stop': None}}

# status -> actions Nova (and this service) accept from it.
ALLOWED = {'ACTIVE': {'shelve', 'os-stop'},
           'SHUTOFF': {'shelve', 'os-start'},
           'SHELVED': {'shelveOffload', 'unshelve'},
           'SHELVED_OFFLOADED': {'unshelve'},
           'ERROR': set()}
WATCHED = ('status', 'OS-EXT-STS:vm_state', 'OS-EXT-STS:task_state',
           'OS-EXT-SRV-ATTR:host', 'lifecycle:retained_disk', 'updated')


@pytest.fixture
def client(make_aio, client_for):
    # shelved_offload_time < 0 keeps SHELVED reachable; 1 GiB hosts make an
    # m1.medium (4 GiB) build fail with NoValidHost -> ERROR.
    aio = make_aio(extra={(None, 'shelved_offload_time'): -1,
                          ('aio', 'host_memory_mb'): 1024})
    return client_for(aio.url)


def _assert_refused(client, server_id, action):
    before = client.server(server_id)
    status, body = client.action(server_id, ACTIONS[action])
    assert status == 409, (before['status'], action, status, body)
    assert body['conflictingRequest']['code'] == 409
    assert body['conflictingRequest']['message']
    after = client.server(server_id)
    assert {k: after.get(k) for k in WATCHED} == \
        {k: before.get(k) for k in WATCHED}, action


def _reach(client, status):
    if status == 'ERROR':
        server_id = client.boot('too-big', flavor='3')
        server = client.wait(server_id, 'ERROR')
        assert 'No valid host' in server['fault']['message']
        return server_id
    server_id = client.boot('states')
    client.wait(server_id, 'ACTIVE')
    path = {'SHUTOFF': ['os-stop'], 'SHELVED': ['shelve'],
            'SHELVED_OFFLOADED': ['shelve', 'shelveOffload']}
    for action in path.get(status, []):
        assert client.action(server_id, ACTIONS[action])[0] == 202
        client.wait(server_id, {'os-stop': 'SHUTOFF', 'shelve': 'SHELVED',
                                'shelveOffload': 'SHELVED_OFFLOADED'}[action])
    return server_id


@pytest.mark.parametrize('status', sorted(ALLOWED))
def test_refused_from_each_state(client, status):
    server_id = _reach(client, status)
    for action in sorted(set(ACTIONS) - ALLOWED[status]):
        _assert_refused(client, server_id, action)


def test_everything_refused_while_a_task_runs(make_aio, client_for):
    aio = make_aio()
    client = client_for(aio.url)
    server_id = client.boot('busy', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    # With host-a1's compute service gone the shelve stays in its task.
    compute = next(s for s in aio.services if s.server == 'host-a1')
    compute.stop()
    aio.services.remove(compute)
    assert client.action(server_id, {'shelve': None})[0] == 202
    assert client.server(server_id)['OS-EXT-STS:task_state'] == 'shelving'
    for action in sorted(ACTIONS):
        _assert_refused(client, server_id, action)
    before = client.server(server_id)
    status, body = client.request('DELETE', '/servers/%s' % server_id)
    assert status == 409, body
    assert client.server(server_id)['OS-EXT-STS:task_state'] == \
        before['OS-EXT-STS:task_state']
