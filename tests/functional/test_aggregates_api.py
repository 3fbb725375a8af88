"""``/os-aggregates`` and ``/os-storage-groups`` through the REST API of
the all-in-one on libvirt's test driver (hosts host-a1, host-a2 in group-a,
host-b1 in group-b; one aggregate per group created at start). Every refused
request is followed by a check that the aggregates are exactly as before."""

import os
import time

import pytest

GiB = 1024 ** 3
MISSING_ID = 4242


def _fault(body: dict, name: str, code: int) -> str:
    assert list(body) == [name], body
    assert body[name]['code'] == code
    return body[name]['message']


def _all(client) -> list:
    status, body = client.request('GET', '/os-aggregates')
    assert status == 200, body
    return body['aggregates']


def _by_name(client, name: str) -> dict:
    return next(a for a in _all(client) if a['name'] == name)


def _show(client, aggregate_id) -> dict:
    status, body = client.request('GET', '/os-aggregates/%s' % aggregate_id)
    assert status == 200, body
    return body['aggregate']


def _create(client, name: str, zone: str | None = None) -> dict:
    body = {'name': name}
    if zone:
        body['availability_zone'] = zone
    status, resp = client.request('POST', '/os-aggregates',
                                  {'aggregate': body})
    assert status == 200, resp
    return resp['aggregate']


def _action(client, aggregate_id, body) -> tuple[int, dict | None]:
    return client.request('POST', '/os-aggregates/%s/action' % aggregate_id,
                          body)


def _ok(client, aggregate_id, body) -> dict:
    status, resp = _action(client, aggregate_id, body)
    assert status == 200, (body, resp)
    return resp['aggregate']


def _details(client, aggregates: list) -> dict:
    """Every aggregate as shown, but the free space of its storage group,
    which other processes on this machine change."""
    details = {}
    for aggregate in aggregates:
        shown = _show(client, aggregate['id'])
        if shown['lifecycle:storage_group']:
            shown['lifecycle:storage_group'].pop('free_bytes')
        details[aggregate['id']] = shown
    return details


def _refused(client, method: str, path: str, body, code: int,
             message: str) -> str:
    """Send a request that must fail with ``code`` and ``message`` and
    change no aggregate."""
    before = _all(client)
    details = _details(client, before)
    status, resp = client.request(method, path, body)
    assert status == code, (path, body, resp)
    name = {400: 'badRequest', 404: 'itemNotFound',
            409: 'conflictingRequest'}[code]
    text = _fault(resp, name, code)
    assert message in text, (path, body, text)
    assert _all(client) == before, (path, body)
    assert _details(client, before) == details
    return text


def _group(client, aggregate_id) -> dict | None:
    return _show(client, aggregate_id)['lifecycle:storage_group']


def _groups(client) -> dict:
    status, body = client.request('GET', '/os-storage-groups')
    assert status == 200, body
    return {g['name']: g for g in body['storage_groups']}


def _offloaded(client, name: str, host: str) -> str:
    server_id = client.boot(name, host=host)
    client.wait(server_id, 'ACTIVE')
    assert client.action(server_id, {'shelve': None})[0] == 202
    client.wait(server_id, 'SHELVED_OFFLOADED')
    return server_id


def _deleted(client, server_id: str) -> None:
    assert client.request('DELETE', '/servers/%s' % server_id)[0] == 204
    deadline = time.monotonic() + 30
    while client.request('GET', '/servers/%s' % server_id)[0] != 404:
        assert time.monotonic() < deadline, 'delete did not finish'
        time.sleep(0.05)


# -- CRUD ---------------------------------------------------------------------

def test_storage_group_aggregates_exist_at_start(client):
    aggregates = {a['name']: a for a in _all(client)}
    assert set(aggregates) == {'storage-group-a', 'storage-group-b'}
    group_a = aggregates['storage-group-a']
    assert group_a['hosts'] == ['host-a1', 'host-a2']
    assert group_a['metadata'] == {'storage_group': 'group-a'}
    assert group_a['availability_zone'] is None
    assert group_a['deleted'] is False and group_a['deleted_at'] is None
    assert set(group_a) == {'id', 'uuid', 'name', 'availability_zone',
                            'hosts', 'metadata', 'created_at', 'updated_at',
                            'deleted', 'deleted_at'}
    assert aggregates['storage-group-b']['hosts'] == ['host-b1']


def test_create_show_update_actions_delete(client):
    created = _create(client, 'rack-1', zone='az1')
    assert set(created) == {'id', 'uuid', 'name', 'availability_zone',
                            'created_at', 'updated_at', 'deleted',
                            'deleted_at'}
    assert created['name'] == 'rack-1'
    assert created['availability_zone'] == 'az1'
    agg_id = created['id']

    shown = _show(client, agg_id)
    assert shown['hosts'] == []
    assert shown['metadata'] == {'availability_zone': 'az1'}
    assert shown['uuid'] == created['uuid']
    assert shown['lifecycle:storage_group'] is None
    assert _by_name(client, 'rack-1')['id'] == agg_id

    status, body = client.request(
        'PUT', '/os-aggregates/%d' % agg_id,
        {'aggregate': {'name': '  rack-one ', 'availability_zone': 'az2'}})
    assert status == 200, body
    assert body['aggregate']['name'] == 'rack-one'
    assert body['aggregate']['availability_zone'] == 'az2'
    assert body['aggregate']['metadata'] == {'availability_zone': 'az2'}
    assert body['aggregate']['updated_at'] is not None

    agg = _ok(client, agg_id, {'add_host': {'host': 'host-b1'}})
    assert agg['hosts'] == ['host-b1']
    agg = _ok(client, agg_id, {'set_metadata': {'metadata': {
        'ssd': 'true', 'tier': 'gold'}}})
    assert agg['metadata'] == {'availability_zone': 'az2', 'ssd': 'true',
                               'tier': 'gold'}
    agg = _ok(client, agg_id, {'set_metadata': {'metadata': {
        'ssd': None, 'tier': 'silver', 'absent': None}}})
    assert agg['metadata'] == {'availability_zone': 'az2', 'tier': 'silver'}
    assert _show(client, agg_id)['metadata'] == agg['metadata']
    agg = _ok(client, agg_id, {'remove_host': {'host': 'host-b1'}})
    assert agg['hosts'] == []

    status, body = client.request('DELETE', '/os-aggregates/%d' % agg_id)
    assert (status, body) == (200, None)
    status, body = client.request('GET', '/os-aggregates/%d' % agg_id)
    assert status == 404
    assert _fault(body, 'itemNotFound', 404) == (
        'Aggregate %d could not be found.' % agg_id)
    assert 'rack-one' not in {a['name'] for a in _all(client)}


def test_uuid_only_from_2_41(client):
    client.microversion = '2.40'
    created = _create(client, 'old-client')
    assert 'uuid' not in created
    assert 'uuid' not in _show(client, created['id'])
    assert all('uuid' not in a for a in _all(client))
    client.microversion = '2.41'
    assert 'uuid' in _show(client, created['id'])


# -- errors -------------------------------------------------------------------

def test_create_and_update_errors_change_nothing(client):
    rack = _create(client, 'rack-2')
    cases = [
        ({'aggregate': {'name': 'storage-group-a'}}, 409,
         'Aggregate storage-group-a already exists.'),
        ({'aggregate': {}}, 400, "'name' is a required property"),
        ({'aggregate': {'name': 'x', 'hosts': []}}, 400,
         "Additional properties are not allowed ('hosts' was unexpected)"),
        ({'aggregate': {'name': ' spaced'}}, 400, "An invalid 'name' value"),
        ({'aggregate': {'name': 'x', 'availability_zone': 'a:b'}}, 400,
         'Invalid input for field/attribute availability_zone'),
        ({'aggregate': {'name': 'x' * 256}}, 400, 'is too long'),
        ({'name': 'x'}, 400, "'aggregate' is a required property"),
        (None, 400, "None is not of type 'object'"),
    ]
    for body, code, message in cases:
        _refused(client, 'POST', '/os-aggregates', body, code, message)

    path = '/os-aggregates/%d' % rack['id']
    _refused(client, 'PUT', path, {'aggregate': {}}, 400, 'is not valid')
    _refused(client, 'PUT', path, {'aggregate': {'name': 'storage-group-b'}},
             409, 'Aggregate storage-group-b already exists.')
    _refused(client, 'PUT', path, {'aggregate': {'name': '   '}}, 400,
             'Invalid input')
    _refused(client, 'PUT', path, {'aggregate': {'availability_zone': None}},
             400, 'does not support empty named availability zone')
    _refused(client, 'PUT', '/os-aggregates/%d' % MISSING_ID,
             {'aggregate': {'name': 'x'}}, 404,
             'Aggregate %d could not be found.' % MISSING_ID)
    _refused(client, 'PUT', '/os-aggregates/abc',
             {'aggregate': {'name': 'x'}}, 400,
             'Invalid input received: id must be an integer')


def test_show_and_delete_errors_change_nothing(client):
    group_a = _by_name(client, 'storage-group-a')
    for path, code, message in (
            ('/os-aggregates/abc', 400, 'id must be an integer'),
            ('/os-aggregates/%d' % MISSING_ID, 404,
             'Aggregate %d could not be found.' % MISSING_ID),
            ('/os-aggregates/99999999999999999999', 404, 'could not be'),
            ('/os-aggregates/-1', 404, 'could not be found')):
        _refused(client, 'GET', path, None, code, message)
        _refused(client, 'DELETE', path, None, code, message)
    _refused(client, 'DELETE', '/os-aggregates/%d' % group_a['id'], None,
             400, 'Cannot remove host from aggregate %d. Reason: Host '
                  'aggregate is not empty.' % group_a['id'])


def test_action_errors_change_nothing(client):
    group_a = _by_name(client, 'storage-group-a')
    path = '/os-aggregates/%d/action' % group_a['id']
    missing = '/os-aggregates/%d/action' % MISSING_ID
    cases = [
        (path, {'reboot': {}}, 400, 'There is no such action: reboot'),
        (path, {'add_host': {'host': 'host-b1'},
                'remove_host': {'host': 'host-a1'}}, 400,
         'Malformed request body'),
        (path, {'add_host': {}}, 400, "'host' is a required property"),
        (path, {'add_host': {'host': 'bad host!'}}, 400, 'does not match'),
        (path, {'add_host': {'host': 'nowhere'}}, 404,
         'Compute host nowhere could not be found.'),
        (path, {'add_host': {'host': 'host-a1'}}, 409,
         'Aggregate %d already has host host-a1.' % group_a['id']),
        (missing, {'add_host': {'host': 'host-a1'}}, 404,
         'Aggregate %d could not be found.' % MISSING_ID),
        (path, {'remove_host': {'host': 'host-b1'}}, 404,
         'Cannot remove host host-b1 in aggregate %d' % group_a['id']),
        (missing, {'remove_host': {'host': 'host-a1'}}, 404,
         'Cannot remove host host-a1 in aggregate %d' % MISSING_ID),
        (path, {'set_metadata': {'metadata': {'bad/key': 'x'}}}, 400,
         'Invalid input'),
        (path, {'set_metadata': {'metadata': {'k': 'v' * 256}}}, 400,
         'is too long'),
        (path, {'set_metadata': {}}, 400, "'metadata' is a required"),
        (missing, {'set_metadata': {'metadata': {'k': 'v'}}}, 404,
         'Aggregate %d could not be found.' % MISSING_ID),
        ('/os-aggregates/abc/action', {'set_metadata': {'metadata': {}}},
         400, 'id must be an integer'),
    ]
    for url, body, code, message in cases:
        _refused(client, 'POST', url, body, code, message)


def test_availability_zone_conflicts(client):
    az1 = _create(client, 'zone-1', zone='az1')
    az2 = _create(client, 'zone-2', zone='az2')
    _ok(client, az1['id'], {'add_host': {'host': 'host-b1'}})
    _refused(client, 'POST', '/os-aggregates/%d/action' % az2['id'],
             {'add_host': {'host': 'host-b1'}}, 409,
             "Cannot add host to aggregate %d. Reason: One or more hosts "
             "already in availability zone(s) ['az1']." % az2['id'])
    _refused(client, 'POST', '/os-aggregates/%d/action' % az1['id'],
             {'set_metadata': {'metadata': {'availability_zone': None}}},
             400, 'does not support empty named availability zone')
    plain = _create(client, 'plain')
    _ok(client, plain['id'], {'add_host': {'host': 'host-b1'}})
    _refused(client, 'POST', '/os-aggregates/%d/action' % plain['id'],
             {'set_metadata': {'metadata': {'availability_zone': 'az3'}}},
             400, "already in availability zone(s) ['az1']")
    agg = _ok(client, plain['id'],
              {'set_metadata': {'metadata': {'availability_zone': 'az1'}}})
    assert agg['availability_zone'] == 'az1'


def test_zone_change_refused_while_hosts_have_instances(client):
    server_id = client.boot('zoned', host='host-b1')
    client.wait(server_id, 'ACTIVE')
    zone = _create(client, 'zone-b', zone='az-b')
    _refused(client, 'POST', '/os-aggregates/%d/action' % zone['id'],
             {'add_host': {'host': 'host-b1'}}, 409,
             "availability zone of the host would change from 'None' to "
             "'az-b' but the host already has 1 instance(s)")
    plain = _create(client, 'no-zone')
    _ok(client, plain['id'], {'add_host': {'host': 'host-b1'}})
    _refused(client, 'PUT', '/os-aggregates/%d' % plain['id'],
             {'aggregate': {'name': 'renamed', 'availability_zone': 'az-x'}},
             400, 'One or more hosts contain instances in this zone')


# -- storage-group rules --------------------------------------------------

@pytest.mark.parametrize('value, message', [
    ('../x', 'must match'),
    ('/abs', 'must match'),
    ('a/b', 'must match'),
    ('.hidden', 'must match'),
    ('a..b', 'must not contain ".."'),
    ('', 'must not be empty'),
    ('g' * 64, 'longer than 63 characters'),
    ('sp ace', 'must match'),
])
def test_invalid_storage_group_names(client, value, message):
    rack = _create(client, 'rack-invalid')
    text = _refused(client, 'POST', '/os-aggregates/%d/action' % rack['id'],
                    {'set_metadata': {'metadata': {'storage_group': value}}},
                    400, message)
    assert 'storage_group' in text


def test_valid_storage_group_names(client):
    rack = _create(client, 'rack-valid')
    for value in ('g' * 63, 'Group_1.a-b', '0'):
        agg = _ok(client, rack['id'],
                  {'set_metadata': {'metadata': {'storage_group': value}}})
        assert agg['metadata'] == {'storage_group': value}


def test_a_host_is_in_one_storage_group_only(client):
    other = _create(client, 'other-storage')
    _ok(client, other['id'],
        {'set_metadata': {'metadata': {'storage_group': 'group-c'}}})
    _refused(client, 'POST', '/os-aggregates/%d/action' % other['id'],
             {'add_host': {'host': 'host-a1'}}, 409,
             'Host host-a1 is already in storage group group-a')

    # A second aggregate without storage group is fine; giving it another
    # group is not, giving it the same group is.
    rack = _create(client, 'rack-a')
    _ok(client, rack['id'], {'add_host': {'host': 'host-a1'}})
    _refused(client, 'POST', '/os-aggregates/%d/action' % rack['id'],
             {'set_metadata': {'metadata': {'storage_group': 'group-b'}}},
             409, 'Host host-a1 is already in storage group group-a')
    agg = _ok(client, rack['id'],
              {'set_metadata': {'metadata': {'storage_group': 'group-a'}}})
    assert agg['metadata'] == {'storage_group': 'group-a'}


def test_retained_disks_pin_their_storage_group(client):
    group_a = _by_name(client, 'storage-group-a')
    path = '/os-aggregates/%d/action' % group_a['id']
    kept = _offloaded(client, 'kept', 'host-a1')
    doomed = _offloaded(client, 'doomed', 'host-a2')
    for metadata in ({'storage_group': None}, {'storage_group': 'group-z'}):
        text = _refused(client, 'POST', path,
                        {'set_metadata': {'metadata': metadata}}, 409,
                        'Storage group group-a holds 2 retained disk(s)')
        assert 'host-a1, host-a2' in text

    # One host may leave while another remains to reach the disks ...
    _ok(client, group_a['id'], {'remove_host': {'host': 'host-a1'}})
    # ... the last one may not.
    _refused(client, 'POST', path, {'remove_host': {'host': 'host-a2'}}, 409,
             'Storage group group-a holds 2 retained disk(s)')
    _ok(client, group_a['id'], {'add_host': {'host': 'host-a1'}})

    # A second aggregate of the same group keeps the hosts in the group.
    twin = _create(client, 'twin-a')
    _ok(client, twin['id'],
        {'set_metadata': {'metadata': {'storage_group': 'group-a'}}})
    _ok(client, twin['id'], {'add_host': {'host': 'host-a1'}})
    _ok(client, twin['id'], {'add_host': {'host': 'host-a2'}})
    _ok(client, twin['id'],
        {'set_metadata': {'metadata': {'storage_group': None}}})
    _refused(client, 'POST', path,
             {'set_metadata': {'metadata': {'storage_group': None}}}, 409,
             'holds 2 retained disk(s)')

    assert client.action(kept, {'unshelve': None})[0] == 202
    client.wait(kept, 'ACTIVE')
    _refused(client, 'POST', path,
             {'set_metadata': {'metadata': {'storage_group': None}}}, 409,
             'holds 1 retained disk(s)')
    _deleted(client, doomed)
    agg = _ok(client, group_a['id'],
              {'set_metadata': {'metadata': {'storage_group': 'group-z'}}})
    assert agg['metadata'] == {'storage_group': 'group-z'}
    agg = _ok(client, group_a['id'],
              {'set_metadata': {'metadata': {'storage_group': None}}})
    assert agg['metadata'] == {}
    assert _show(client, group_a['id'])['lifecycle:storage_group'] is None


# -- accounting -----------------------------------------------------------

def test_accounting_follows_shelve_and_unshelve(aio, client):
    group_a = _by_name(client, 'storage-group-a')
    empty = _group(client, group_a['id'])
    assert empty['name'] == 'group-a'
    assert empty['retained_disks'] == 0
    assert empty['retained_bytes'] == 0
    assert empty['capacity_bytes'] > 0
    assert 0 < empty['free_bytes'] <= empty['capacity_bytes']
    assert empty['usage_source'] == 'measured'

    server_id = _offloaded(client, 'counted', 'host-a1')
    retained = _group(client, group_a['id'])
    assert retained['retained_disks'] == 1
    assert retained['retained_bytes'] > 0
    groups = _groups(client)
    assert set(groups) == {'group-a', 'group-b'}
    assert groups['group-a']['retained_disks'] == 1
    assert groups['group-a']['retained_bytes'] == retained['retained_bytes']
    assert groups['group-b']['retained_disks'] == 0
    assert groups['group-b']['retained_bytes'] == 0
    status, body = client.request('GET', '/os-storage-groups/group-a')
    assert status == 200
    assert body['storage_group']['retained_disks'] == 1

    assert client.action(server_id, {'unshelve': None})[0] == 202
    client.wait(server_id, 'ACTIVE')
    after = _group(client, group_a['id'])
    assert after['retained_disks'] == 0
    assert after['retained_bytes'] == 0
    assert _groups(client)['group-a']['retained_disks'] == 0


def test_a_kept_memory_state_counts_in_the_group(aio, client):
    """A hibernate-shelved server's state file is in the group's usage
    (what the watermarks and escalation read), and goes with its resume."""
    group_a = _by_name(client, 'storage-group-a')
    server_id = _offloaded(client, 'sleepy', 'host-a1')
    plain = _group(client, group_a['id'])['retained_bytes']
    assert plain > 0
    assert client.action(server_id, {'unshelve': None})[0] == 202
    client.wait(server_id, 'ACTIVE')

    assert client.action(server_id, {'shelve': {
        'lifecycle:keep_memory': True}})[0] == 202
    client.wait(server_id, 'SHELVED_OFFLOADED')
    state = os.path.join(aio.storage_path('group-a'), server_id,
                         'memory.save')
    state_bytes = os.lstat(state).st_blocks * 512
    assert state_bytes > 0
    kept = _group(client, group_a['id'])
    assert kept['retained_disks'] == 1
    assert kept['retained_bytes'] == plain + state_bytes

    assert client.action(server_id, {'unshelve': None})[0] == 202
    client.wait(server_id, 'ACTIVE')
    assert not os.path.exists(state)
    assert _group(client, group_a['id'])['retained_bytes'] == 0


def test_configured_capacity_and_invisible_storage(client):
    group_a = _by_name(client, 'storage-group-a')
    measured = _group(client, group_a['id'])
    _ok(client, group_a['id'],
        {'set_metadata': {'metadata': {'storage_capacity_gb': '1'}}})
    configured = _group(client, group_a['id'])
    assert configured['capacity_bytes'] == GiB
    assert 0 <= configured['free_bytes'] <= GiB
    assert configured['free_bytes'] <= measured['free_bytes']
    for value in ('lots', '0', '-3', '1.5'):
        _refused(client, 'POST', '/os-aggregates/%d/action' % group_a['id'],
                 {'set_metadata': {'metadata': {
                     'storage_capacity_gb': value}}},
                 400, 'storage_capacity_gb must be a positive integer')
    _ok(client, group_a['id'],
        {'set_metadata': {'metadata': {'storage_capacity_gb': None}}})
    assert _group(client, group_a['id'])['capacity_bytes'] == \
        measured['capacity_bytes']

    # A group without hosts has no storage this process can see.
    lonely = _create(client, 'lonely')
    _ok(client, lonely['id'],
        {'set_metadata': {'metadata': {'storage_group': 'group-c'}}})
    assert _groups(client)['group-c'] == {
        'name': 'group-c', 'retained_disks': 0, 'retained_bytes': None,
        'capacity_bytes': None, 'free_bytes': None,
        'usage_source': 'unknown', 'usage_reported_by': None,
        'usage_reported_at': None}
    _ok(client, lonely['id'],
        {'set_metadata': {'metadata': {'storage_capacity_gb': '5'}}})
    assert _group(client, lonely['id'])['capacity_bytes'] == 5 * GiB
    status, body = client.request('GET', '/os-storage-groups/nope')
    assert status == 404
    assert _fault(body, 'itemNotFound', 404) == (
        'Storage group nope could not be found.')


# -- openstacksdk ---------------------------------------------------------

def test_openstacksdk_drives_aggregates(aio):
    openstack = pytest.importorskip('openstack')
    conn = openstack.connect(auth_type='none', auth={'endpoint': aio.url},
                             compute_endpoint_override=aio.url)
    try:
        names = {a.name for a in conn.compute.aggregates()}
        assert names == {'storage-group-a', 'storage-group-b'}
        agg = conn.compute.create_aggregate(name='sdk-agg',
                                            availability_zone='sdk-az')
        assert agg.availability_zone == 'sdk-az'
        agg = conn.compute.add_host_to_aggregate(agg, 'host-b1')
        assert agg.hosts == ['host-b1']
        agg = conn.compute.set_aggregate_metadata(agg, {'tier': 'gold'})
        assert agg.metadata == {'availability_zone': 'sdk-az',
                                'tier': 'gold'}
        agg = conn.compute.remove_host_from_aggregate(agg, 'host-b1')
        assert agg.hosts == []
        conn.compute.delete_aggregate(agg)
        assert 'sdk-agg' not in {a.name for a in conn.compute.aggregates()}
    finally:
        conn.close()
