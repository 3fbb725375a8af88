"""The tenant-isolation and policy rules of the REST API, checked the same
way for every authentication (a real Keystone and noauth2): the callers are
:class:`tests.harness.client.Client` objects, each with a token of its
own."""

from tests.harness.client import Client


# The harness's hosts (tests/functional/conftest.py make_aio).
GROUP_HOSTS = {'group-a': ['host-a1', 'host-a2'], 'group-b': ['host-b1']}


def forbidden(status: int, body, rule: str) -> None:
    """Nova's 403: ``{"forbidden": {"code": 403, "message": "Policy doesn't
    allow <rule> to be performed."}}``."""
    assert status == 403, (status, body)
    assert body == {'forbidden': {
        'code': 403,
        'message': "Policy doesn't allow %s to be performed." % rule}}


def not_found(status: int, body) -> None:
    assert status == 404, (status, body)
    assert list(body) == ['itemNotFound'], body


def check_rules(member_a: Client, member_b: Client,
                admin: Client, image: str, project_a: str) -> None:
    """A's member owns a server; B's member can neither see nor touch it;
    a member is refused the admin actions; the admin can do all of it; no
    refused request changes anything."""
    server_id = member_a.boot('tenant-a', image=image)
    member_a.wait(server_id, 'ACTIVE')
    before = admin.server(server_id)
    assert before['tenant_id'] == project_a

    # Project B: another project's server does not exist for it.
    path = '/servers/%s' % server_id
    not_found(*member_b.request('GET', path))
    for action in ({'shelve': None}, {'unshelve': None},
                   {'shelveOffload': None}, {'os-stop': None}):
        not_found(*member_b.action(server_id, action))
    not_found(*member_b.request('DELETE', path))
    for listing in ('/servers', '/servers/detail',
                    '/servers?project_id=%s' % project_a):
        status, body = member_b.request('GET', listing)
        assert status == 200, body
        assert server_id not in [s['id'] for s in body['servers']]
    forbidden(*member_b.request('GET', '/servers?all_tenants=1'),
              'os_compute_api:servers:index:get_all_tenants')
    forbidden(*member_b.request('GET', '/servers/detail?all_tenants=1'),
              'os_compute_api:servers:detail:get_all_tenants')

    # Its own member sees it, without the admin's attributes.
    status, body = member_a.request('GET', '/servers')
    assert server_id in [s['id'] for s in body['servers']]
    own = member_a.server(server_id)
    assert 'OS-EXT-SRV-ATTR:host' not in own and 'host_status' not in own
    assert before['OS-EXT-SRV-ATTR:host']

    # Shelve (member), then the admin-only actions refused to the member.
    status, body = member_a.action(server_id, {'shelve': None})
    assert status == 202, body
    shelved = member_a.wait(server_id, 'SHELVED_OFFLOADED')
    retained = shelved['lifecycle:retained_disk']
    assert set(retained) == {'storage_group', 'since'}, retained
    admin_view = admin.server(server_id)['lifecycle:retained_disk']
    assert admin_view['host'] and admin_view['location']
    forbidden(*member_a.action(server_id, {'shelveOffload': None}),
              'os_compute_api:os-shelve:shelve_offload')
    group_hosts = [h for h in GROUP_HOSTS[admin_view['storage_group']]
                   if h != admin_view['host']]
    other_host = (group_hosts or [admin_view['host']])[0]
    forbidden(*member_a.action(server_id, {'unshelve': {
        'host': other_host, 'availability_zone': None}}),
        'os_compute_api:os-shelve:unshelve_to_host')
    forbidden(*member_a.request('POST', '/flavors', {'flavor': {
        'name': 'stolen', 'ram': 64, 'vcpus': 1, 'disk': 1}}),
        'os_compute_api:os-flavor-manage:create')
    forbidden(*member_a.request('GET', '/os-aggregates'),
              'os_compute_api:os-aggregates:index')
    forbidden(*member_a.request('POST', '/os-aggregates', {'aggregate': {
        'name': 'stolen'}}), 'os_compute_api:os-aggregates:create')
    forbidden(*member_a.request('POST', '/os-aggregates/1/action', {
        'add_host': {'host': 'host-b1'}}),
        'os_compute_api:os-aggregates:add_host')
    forbidden(*member_a.request('GET', '/os-hypervisors/detail'),
              'os_compute_api:os-hypervisors:list-detail')
    forbidden(*member_a.request('GET', '/os-hypervisors'),
              'os_compute_api:os-hypervisors:list')
    forbidden(*member_a.request('GET', '/os-storage-groups'),
              'lifecycle:os-storage-groups:index')

    # Nothing changed by any refused request.
    after = admin.server(server_id)
    assert after['status'] == 'SHELVED_OFFLOADED'
    assert after['lifecycle:retained_disk'] == admin_view
    status, body = admin.request('GET', '/flavors')
    assert 'stolen' not in [f['name'] for f in body['flavors']]
    status, body = admin.request('GET', '/os-aggregates')
    assert 'stolen' not in [a['name'] for a in body['aggregates']]

    # The admin can do all of it.
    status, body = admin.request('GET', '/servers?all_tenants=1')
    assert server_id in [s['id'] for s in body['servers']]
    for path_ in ('/os-hypervisors/detail', '/os-aggregates',
                  '/os-storage-groups'):
        status, body = admin.request('GET', path_)
        assert status == 200, (path_, body)
    status, body = admin.action(server_id, {'unshelve': {
        'host': other_host}})
    assert status == 202, body
    active = admin.wait(server_id, 'ACTIVE')
    assert active['OS-EXT-SRV-ATTR:host'] == other_host
    status, body = admin.action(server_id, {'shelve': None})
    assert status == 202, body
    admin.wait(server_id, 'SHELVED_OFFLOADED')
    status, body = member_a.action(server_id, {'unshelve': None})
    assert status == 202, body
    member_a.wait(server_id, 'ACTIVE')
    status, body = admin.request('POST', '/flavors', {'flavor': {
        'name': 'admin-made', 'ram': 64, 'vcpus': 1, 'disk': 1}})
    assert status == 200, body

    # Deleted by its own member.
    status, body = member_a.request('DELETE', path)
    assert status == 204, body
