"""``GET /servers[/detail]?changes-since=`` and ``changes-before`` (2.66),
as Nova answers them: only the servers changed in the window, deleted ones
included (status DELETED); a malformed time or a reversed window is a 400
in Nova's error shape."""

import datetime
import time
import urllib.parse

import pytest


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _listed(client, path: str, **query) -> dict[str, dict]:
    status, body = client.request('GET', path + '?' +
                                  urllib.parse.urlencode(query))
    assert status == 200, body
    return {s['id']: s for s in body['servers']}


def test_only_what_changed_since_deletions_included(client):
    quiet = client.boot('quiet')
    moved = client.boot('moved')
    gone = client.boot('gone')
    for server_id in (quiet, moved, gone):
        client.wait(server_id, 'ACTIVE')
    time.sleep(0.01)
    since = _now()
    assert _listed(client, '/servers/detail', **{'changes-since': since}) \
        == {}

    client.action(moved, {'os-stop': None})
    client.wait(moved, 'SHUTOFF')
    assert client.request('DELETE', '/servers/%s' % gone)[0] == 204
    deadline = time.monotonic() + 30
    while client.request('GET', '/servers/%s' % gone)[0] != 404:
        assert time.monotonic() < deadline, 'not deleted'
        time.sleep(0.05)

    changed = _listed(client, '/servers/detail', **{'changes-since': since})
    assert sorted(changed) == sorted([moved, gone])
    assert changed[moved]['status'] == 'SHUTOFF'
    assert changed[gone]['status'] == 'DELETED'
    assert sorted(_listed(client, '/servers', **{
        'changes-since': since})) == sorted([moved, gone])
    # Without the filter a deleted server is not listed.
    assert gone not in _listed(client, '/servers/detail')
    assert quiet in _listed(client, '/servers/detail')

    # changes-before (2.66): what had not changed since then.
    before = _listed(client, '/servers/detail', **{'changes-before': since})
    assert sorted(before) == [quiet]
    # ... ignored below 2.66, as Nova ignores it there.
    client.microversion = '2.65'
    assert quiet in _listed(client, '/servers/detail', **{
        'changes-before': '2000-01-01T00:00:00Z'})


@pytest.mark.parametrize('query, message', [
    ({'changes-since': 'yesterday'}, 'Invalid filter field: changes-since.'),
    ({'changes-before': '2026-13-40T00:00:00Z'},
     'Invalid filter field: changes-before.'),
    ({'changes-since': '2026-12-06T10:00:00Z',
      'changes-before': '2026-12-06T09:00:00Z'},
     'The value of changes-since must be less than or equal to '
     'changes-before.'),
])
def test_bad_windows_are_400(client, query, message):
    server_id = client.boot('kept')
    client.wait(server_id, 'ACTIVE')
    status, body = client.request('GET', '/servers/detail?' +
                                  urllib.parse.urlencode(query))
    assert status == 400, body
    assert body == {'badRequest': {'code': 400, 'message': message}}
    assert client.server(server_id)['status'] == 'ACTIVE'
