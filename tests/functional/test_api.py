"""The REST API driven the way users drive it: openstacksdk against the
all-in-one on libvirt's test driver, and raw HTTP for every error code.
After each refused request the server is checked to be exactly as before."""

import json

import openstack
import pytest

from tests.harness.client import Client

MISSING = '7d6a4a4e-0b5c-4a77-9e4b-0123456789ab'


@pytest.fixture
def conn(aio):
    conn = openstack.connect(auth_type='none', auth={'endpoint': aio.url},
                             compute_endpoint_override=aio.url)
    yield conn
    conn.close()


def raw(url: str, method: str = 'GET', data: bytes | None = None,
        headers: dict | None = None):
    """(status, headers, JSON body or None) of one request, with no version
    header but those given."""
    status, head, payload = Client(url, microversion=None).send(
        method, '', data, headers)
    return status, head, json.loads(payload) if payload else None


def _fault(body: dict, name: str, code: int) -> str:
    assert list(body) == [name], body
    assert body[name]['code'] == code
    return body[name]['message']


# -- openstacksdk ------------------------------------------------------------

def test_sdk_discovers_the_microversion_range(conn):
    data = conn.compute.get_endpoint_data()
    assert tuple(data.min_microversion) == (2, 1)
    assert tuple(data.max_microversion) == (2, 91)
    assert {f.name for f in conn.compute.flavors()} >= {'m1.tiny'}
    assert [i.status for i in conn.compute.images()] == ['ACTIVE']
    hypervisors = {h.name: h for h in conn.compute.hypervisors(details=True)}
    assert set(hypervisors) == {'host-a1', 'host-a2', 'host-b1'}
    assert all(h.state == 'up' for h in hypervisors.values())


def test_sdk_shelve_unshelve_stop_start_delete(aio, conn, client):
    image = next(conn.compute.images())
    server = conn.compute.create_server(
        name='sdk-vm', image_id=image.id, flavor_id='1', networks='none',
        metadata={'purpose': 'test'})
    assert server.admin_password
    server = conn.compute.wait_for_server(server, status='ACTIVE', wait=60,
                                          interval=0.1)
    assert server.compute_host in aio.hosts
    assert server.metadata == {'purpose': 'test'}
    assert server.flavor.original_name == 'm1.tiny'
    first_host = server.compute_host
    group = aio.hosts[first_host]

    conn.compute.shelve_server(server)
    server = conn.compute.wait_for_server(server, status='SHELVED_OFFLOADED',
                                          wait=60, interval=0.1)
    assert server.compute_host is None
    retained = client.server(server.id)['lifecycle:retained_disk']
    assert retained['storage_group'] == group
    assert retained['host'] == first_host
    assert retained['location'] == '%s/disk' % server.id
    assert retained['since']

    # 2.91: unshelve onto another host of the same storage group.
    other = next(h for h, g in aio.hosts.items()
                 if g == group and h != first_host)
    conn.compute.unshelve_server(server, host=other)
    server = conn.compute.wait_for_server(server, status='ACTIVE', wait=60,
                                          interval=0.1)
    assert server.compute_host == other
    assert client.server(server.id)['lifecycle:retained_disk'] is None

    conn.compute.stop_server(server)
    server = conn.compute.wait_for_server(server, status='SHUTOFF', wait=60,
                                          interval=0.1)
    conn.compute.start_server(server)
    server = conn.compute.wait_for_server(server, status='ACTIVE', wait=60,
                                          interval=0.1)

    conn.compute.shelve_server(server)
    server = conn.compute.wait_for_server(server, status='SHELVED_OFFLOADED',
                                          wait=60, interval=0.1)
    conn.compute.unshelve_server(server)
    server = conn.compute.wait_for_server(server, status='ACTIVE', wait=60,
                                          interval=0.1)

    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60, interval=0.1)
    assert conn.compute.find_server(server.id) is None
    assert client.request('GET', '/servers/%s' % server.id)[0] == 404


# -- version documents -------------------------------------------------------

def test_version_documents_use_the_request_host(aio):
    root = aio.url[:-len('/v2.1')]
    status, head, body = raw(root + '/')
    assert status == 200
    assert 'OpenStack-API-Version' not in head
    (version,) = body['versions']
    assert (version['id'], version['status'], version['version'],
            version['min_version']) == ('v2.1', 'CURRENT', '2.91', '2.1')
    assert version['links'] == [{'rel': 'self', 'href': root + '/v2.1/'}]
    for path in ('/v2.1', '/v2.1/'):
        status, head, body = raw(root + path, headers={
            'OpenStack-API-Version': 'compute latest'})
        assert status == 200
        assert head['OpenStack-API-Version'] == 'compute 2.91'
        assert body['version']['links'][0] == {'rel': 'self',
                                               'href': root + '/v2.1/'}


def test_microversion_out_of_range_is_406(aio):
    status, head, body = raw(aio.url + '/servers', headers={
        'OpenStack-API-Version': 'compute 2.92'})
    assert status == 406
    assert _fault(body, 'computeFault', 406) == (
        'Version 2.92 is not supported by the API. Minimum is 2.1 and '
        'maximum is 2.91.')
    status, _head, body = raw(aio.url + '/servers', headers={
        'X-OpenStack-Nova-API-Version': 'two'})
    assert status == 400
    _fault(body, 'badRequest', 400)


# -- errors change nothing ---------------------------------------------------

def _servers(client) -> list[dict]:
    status, body = client.request('GET', '/servers/detail')
    assert status == 200
    return body['servers']


def test_create_errors(aio, client):
    before = _servers(client)
    image = client.default_image
    cases = [
        (b'{"server": ', 400, 'Malformed request body'),
        (json.dumps({'server': {'name': 'x', 'flavorRef': '1',
                                'imageRef': image, 'networks': 'none',
                                'key_name': 'k'}}).encode(), 400,
         "Additional properties are not allowed ('key_name' was "
         "unexpected)"),
        (json.dumps({'server': {'name': 'x', 'flavorRef': '1',
                                'imageRef': image}}).encode(), 400,
         "'networks' is a required property"),
        (json.dumps({'server': {'name': 'x', 'flavorRef': '404',
                                'imageRef': image,
                                'networks': 'none'}}).encode(), 400,
         'Flavor 404 could not be found.'),
        (json.dumps({'server': {'name': 'x', 'flavorRef': '1',
                                'imageRef': MISSING,
                                'networks': 'none'}}).encode(), 400,
         'could not be found'),
        (json.dumps({'server': {'name': 'x', 'flavorRef': '1',
                                'imageRef': image, 'networks': 'none',
                                'host': 'nowhere'}}).encode(), 400,
         'nowhere could not be found'),
    ]
    for data, code, message in cases:
        status, body = client.request('POST', '/servers', raw=data)
        assert status == code, body
        assert message in _fault(body, 'badRequest', code)
    assert _servers(client) == before

    status, _h, body = raw(aio.url + '/servers', 'POST',
                           b'{"server": "%s"}' % (b'x' * 200000),
                           {'Content-Type': 'application/json'})
    assert status == 413
    _fault(body, 'overLimit', 413)
    assert _servers(client) == before


def test_not_found(client):
    for path in ('/servers/%s' % MISSING, '/servers/not-a-uuid',
                 '/flavors/404', '/images/%s' % MISSING, '/nothing/here'):
        status, body = client.request('GET', path)
        assert status == 404, path
        _fault(body, 'itemNotFound', 404)
    status, body = client.request('DELETE', '/servers/%s' % MISSING)
    assert status == 404
    assert _fault(body, 'itemNotFound', 404) == 'Instance could not be found'
    for server_id in (MISSING, 'not-a-uuid'):
        status, body = client.action(server_id, {'shelve': None})
        assert status == 404
        _fault(body, 'itemNotFound', 404)


def test_action_errors_leave_the_server_alone(aio, client):
    server_id = client.boot('steady')
    active = client.wait(server_id, 'ACTIVE')
    cases = [
        ({'reboot': {'type': 'SOFT'}}, '2.91', 400,
         'There is no such action: reboot'),
        ({'shelve': None, 'unshelve': None}, '2.91', 400,
         'Malformed request body'),
        ({'unshelve': {}}, '2.77', 400,
         "'availability_zone' is a required property"),
        ({'unshelve': {'availability_zone': 'nova', 'host': 'host-a2'}},
         '2.90', 400,
         "Additional properties are not allowed ('host' was unexpected)"),
        ({'unshelve': {'flavor': 'x'}}, '2.91', 400,
         "('flavor' was unexpected)"),
        ({'shelveOffload': None}, '2.91', 409,
         "Cannot 'shelveOffload' instance %s while it is in vm_state "
         "active" % server_id),
        ({'unshelve': None}, '2.91', 409,
         "Cannot 'unshelve' instance %s while it is in vm_state "
         "active" % server_id),
        ({'unshelve': {'host': 'host-a2'}}, '2.91', 409, "Cannot 'unshelve'"),
        ({'os-start': None}, '2.91', 409,
         "Cannot 'start' instance %s while it is in vm_state "
         "active" % server_id),
    ]
    for body, version, code, message in cases:
        client.microversion = version
        status, resp = client.action(server_id, body)
        assert status == code, (body, resp)
        name = 'badRequest' if code == 400 else 'conflictingRequest'
        assert message in _fault(resp, name, code), (body, resp)
        client.microversion = '2.91'
        assert client.server(server_id) == active, body
    status, resp = client.request(
        'POST', '/servers/%s/action' % server_id, raw=b'{"shelve"')
    assert status == 400
    assert _fault(resp, 'badRequest', 400) == 'Malformed request body'
    assert client.server(server_id) == active


def test_unshelve_to_a_host_outside_the_group_is_refused(aio, client):
    server_id = client.boot('grouped', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    assert client.action(server_id, {'shelve': None})[0] == 202
    offloaded = client.wait(server_id, 'SHELVED_OFFLOADED')
    for host, message in (('host-b1', 'not in storage group'),
                          ('nowhere', 'nowhere could not be found')):
        status, body = client.action(server_id, {'unshelve': {'host': host}})
        assert status == 400, body
        assert message in _fault(body, 'badRequest', 400)
        assert client.server(server_id) == offloaded
    status, body = client.action(server_id, {'shelve': None})
    assert status == 409
    assert client.server(server_id) == offloaded


def test_flavor_create_and_conflict(client):
    flavor = {'flavor': {'name': 'api.test', 'ram': 256, 'vcpus': 1,
                         'disk': 1, 'id': 'api-test'}}
    status, body = client.request('POST', '/flavors', flavor)
    assert status == 200, body
    assert body['flavor']['id'] == 'api-test'
    assert body['flavor']['ram'] == 256
    status, body = client.request('GET', '/flavors/api-test')
    assert status == 200
    status, body = client.request('POST', '/flavors', flavor)
    assert status == 409
    assert _fault(body, 'conflictingRequest', 409) == (
        'Flavor with name api.test already exists.')
    flavor['flavor']['ram'] = 0
    status, body = client.request('POST', '/flavors', flavor)
    assert status == 400
