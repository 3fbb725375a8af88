"""``GET /servers[/detail]`` filters and paging, as Nova answers them: a
member sees its own project's servers whatever project it names, the
admin another project's with ``all_tenants``; exact filters and the name
regex combine; pages follow ``limit`` and ``marker`` newest first, and an
unknown marker is a 400 in Nova's error shape."""

import urllib.parse

import pytest

from tests.harness.client import Client


def _ids(client: Client, path: str, **query) -> list[str]:
    status, body = client.request('GET', path + '?' + urllib.parse.urlencode(
        query, doseq=True))
    assert status == 200, body
    return [s['id'] for s in body['servers']]


@pytest.fixture
def servers(aio):
    """Project A: web-1, web-2, db-1 (db-1 stopped), booted in that order;
    project B: web-b."""
    member_a = Client(aio.url, token='alice:project-a')
    member_b = Client(aio.url, token='bob:project-b')
    image = aio.default_image['id']
    ids = {}
    for client, name in ((member_a, 'web-1'), (member_a, 'web-2'),
                         (member_a, 'db-1'), (member_b, 'web-b')):
        ids[name] = client.boot(name, image=image)
        client.wait(ids[name], 'ACTIVE')
    assert member_a.action(ids['db-1'], {'os-stop': None})[0] == 202
    member_a.wait(ids['db-1'], 'SHUTOFF')
    return member_a, member_b, Client(aio.url, token=None), ids


def test_a_member_lists_its_own_project_whatever_it_names(servers):
    member_a, member_b, _admin, ids = servers
    own = [ids['db-1'], ids['web-2'], ids['web-1']]  # newest first
    for path in ('/servers', '/servers/detail'):
        assert _ids(member_a, path) == own
        assert _ids(member_a, path, project_id='project-b') == own
        assert _ids(member_a, path, tenant_id='project-b') == own
        assert _ids(member_b, path) == [ids['web-b']]
    # host is not a filter a member may use: ignored, as Nova ignores it.
    assert _ids(member_a, '/servers', host='no-such-host') == own


def test_filters_combine_in_and_across_projects(servers):
    member_a, _member_b, admin, ids = servers
    assert _ids(member_a, '/servers', name='^web') == [ids['web-2'],
                                                       ids['web-1']]
    assert _ids(member_a, '/servers', status='SHUTOFF') == [ids['db-1']]
    assert _ids(member_a, '/servers', status='ACTIVE', name='1$') == [
        ids['web-1']]
    assert _ids(member_a, '/servers', name='^web-b$') == []

    assert _ids(admin, '/servers', all_tenants=1,
                project_id='project-b') == [ids['web-b']]
    assert _ids(admin, '/servers/detail', all_tenants=1, name='^web') == [
        ids['web-b'], ids['web-2'], ids['web-1']]
    assert _ids(admin, '/servers', all_tenants=1, status='SHUTOFF') == [
        ids['db-1']]
    host = admin.server(ids['web-b'])['OS-EXT-SRV-ATTR:host']
    on_host = _ids(admin, '/servers', all_tenants=1, host=host)
    assert ids['web-b'] in on_host
    assert all(admin.server(i)['OS-EXT-SRV-ATTR:host'] == host
               for i in on_host)


@pytest.mark.parametrize('query', [{}, {'name': '-'}],
                         ids=['database-paged', 'regex-paged'])
def test_pages_follow_limit_and_marker(servers, query):
    member_a, _member_b, _admin, ids = servers
    status, body = member_a.request(
        'GET', '/servers?' + urllib.parse.urlencode(dict(query, limit=2)))
    assert status == 200, body
    assert [s['id'] for s in body['servers']] == [ids['db-1'], ids['web-2']]
    link = urllib.parse.urlsplit(body['servers_links'][0]['href'])
    follow = urllib.parse.parse_qs(link.query)
    assert follow['marker'] == [ids['web-2']]
    assert _ids(member_a, '/servers', **dict(query, limit=2,
                                             marker=ids['web-2'])) == [
        ids['web-1']]
    assert _ids(member_a, '/servers', **dict(query,
                                             marker=ids['web-1'])) == []


@pytest.mark.parametrize('query', [{}, {'name': 'web'}],
                         ids=['database-paged', 'regex-paged'])
def test_unknown_marker_is_400(servers, query):
    member_a, _member_b, _admin, ids = servers
    marker = '0b8f3a4e-7a52-4c4e-9d7e-5a0f1f3d2c11'
    status, body = member_a.request(
        'GET', '/servers?' + urllib.parse.urlencode(dict(query,
                                                         marker=marker)))
    assert status == 400, body
    assert body == {'badRequest': {
        'code': 400, 'message': 'marker [%s] not found' % marker}}
    assert member_a.server(ids['web-1'])['status'] == 'ACTIVE'
