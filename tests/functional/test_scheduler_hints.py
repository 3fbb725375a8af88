"""Nova's scheduler-hints body on server create, through the REST API of the
all-in-one (hosts host-a1, host-a2 in group-a, host-b1 in group-b): both
spellings (``os:scheduler_hints``, ``OS-SCH-HNT:scheduler_hints``) are
accepted, ``storage_group`` reaches HostAggregateGroupFilter, ``same_host``
and ``different_host`` place by the hosts of the servers they name, and a
hint no filter reads is ignored, as Nova ignores it."""

import pytest

GROUP_A = {'host-a1', 'host-a2'}


def _create(client, name, hints=None, key='os:scheduler_hints', host=None):
    body = {'server': {'name': name, 'flavorRef': '1', 'networks': 'none',
                       'imageRef': client.default_image}}
    if host:
        body['server']['host'] = host
    if hints is not None:
        body[key] = hints
    return client.request('POST', '/servers', body)


def _boot(client, name, **kwargs):
    status, resp = _create(client, name, **kwargs)
    assert status == 202, resp
    server_id = resp['server']['id']
    client.wait(server_id, 'ACTIVE')
    return server_id


def _host(client, server_id):
    return client.server(server_id)['OS-EXT-SRV-ATTR:host']


@pytest.mark.parametrize('key', ['os:scheduler_hints',
                                 'OS-SCH-HNT:scheduler_hints'])
def test_storage_group_hint_places_in_the_group(client, key):
    for i in range(3):
        server_id = _boot(client, 'b%d' % i, key=key,
                          hints={'storage_group': 'group-b'})
        assert _host(client, server_id) == 'host-b1'
    for i in range(3):
        # A list of one group, as the openstack client sends repeated
        # --hint values; and a hint no filter reads, ignored.
        server_id = _boot(client, 'a%d' % i, key=key,
                          hints={'storage_group': ['group-a'],
                                 'no_such_hint': 'ignored'})
        assert _host(client, server_id) in GROUP_A


def test_storage_group_is_kept_through_shelve_and_unshelve(client):
    server_id = _boot(client, 'kept', hints={'storage_group': 'group-b'})
    assert client.action(server_id, {'shelve': None})[0] == 202
    client.wait(server_id, 'SHELVED_OFFLOADED')
    assert client.action(server_id, {'unshelve': None})[0] == 202
    client.wait(server_id, 'ACTIVE')
    assert _host(client, server_id) == 'host-b1'


def test_same_host_and_different_host(client):
    on_a2 = _boot(client, 'anchor', host='host-a2')
    on_b1 = _boot(client, 'other', host='host-b1')
    for i in range(2):
        server_id = _boot(client, 'same%d' % i, hints={'same_host': on_a2})
        assert _host(client, server_id) == 'host-a2'
    for i in range(3):
        server_id = _boot(client, 'diff%d' % i,
                          hints={'different_host': [on_a2, on_b1]})
        assert _host(client, server_id) == 'host-a1'
    # Nothing fits both hints: no valid host, as in Nova.
    status, resp = _create(client, 'none', hints={
        'storage_group': 'group-b', 'different_host': [on_b1]})
    assert status == 202, resp
    client.wait(resp['server']['id'], 'ERROR')


@pytest.mark.parametrize('hints, message', [
    ({'storage_group': ''}, 'storage_group'),
    ({'storage_group': ['group-a', 'group-b']}, 'storage_group'),
    ({'same_host': '2b0e9f4c-6a55-4f7e-9a43-7b8f3c2d1e0a'}, 'not found'),
    ({'different_host': 'not-a-uuid'}, 'different_host'),
])
def test_bad_hints_are_refused(client, hints, message):
    status, resp = _create(client, 'bad', hints=hints)
    assert status == 400, resp
    assert message in str(resp), resp
    status, body = client.request('GET', '/servers')
    assert status == 200 and body['servers'] == [], body
