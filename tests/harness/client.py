"""The one HTTP client of the project's REST API (the Nova-compatible API)
for the tests.

urllib, not openstacksdk (which tests/functional/test_api.py drives as a
user's client): the tests check the API's own answers -- every status code,
Nova's error bodies (``{"itemNotFound": {...}}``), headers, the microversion
negotiation, malformed bodies -- so the client must send exactly what it is
given and hand back exactly what came, without the SDK's version discovery,
retries, redirects or exceptions in between.
"""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message


class Client:
    """JSON in, (status, JSON) out.

    ``microversion``: the ``OpenStack-API-Version: compute X`` of every
    request (None: no version header, the API's minimum). ``token``: an
    ``X-Auth-Token`` for each request (a callable is asked at each request,
    e.g. a keystoneauth1 session's ``get_token``; None: no token, which
    noauth2 takes for the admin). ``timeout``: seconds a request may wait
    for its answer."""

    def __init__(self, url: str, microversion: str | None = '2.91',
                 token: str | Callable[[], str] | None = None,
                 timeout: float = 60) -> None:
        self.url = url
        self.microversion = microversion
        self.token = token
        self.timeout = timeout

    def send(self, method: str, path: str, data: bytes | None = None,
             headers: dict | None = None, timeout: float | None = None
             ) -> tuple[int, Message, bytes]:
        """One request with ``headers``, the version header and the token
        added (neither overrides a header given): status, headers, body."""
        req = urllib.request.Request(self.url + path, data=data,
                                     method=method)
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        if self.microversion and not req.has_header('Openstack-api-version'):
            req.add_header('OpenStack-API-Version',
                           'compute %s' % self.microversion)
        token = self.token() if callable(self.token) else self.token
        if token and not req.has_header('X-auth-token'):
            req.add_header('X-Auth-Token', token)
        try:
            with urllib.request.urlopen(
                    req, timeout=timeout or self.timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def request(self, method: str, path: str, body=None,
                raw: bytes | None = None) -> tuple[int, dict | None]:
        """``body`` as JSON (or ``raw`` bytes as they are): the status and
        the JSON answer (None when empty; ``{'raw': text}`` when it is not
        JSON, e.g. a proxy's page, so that the status is still seen)."""
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        status, _headers, payload = self.send(
            method, path, data, {'Content-Type': 'application/json'})
        try:
            return status, (json.loads(payload) if payload else None)
        except ValueError:
            return status, {'raw': payload.decode(errors='replace')}

    def server(self, server_id: str) -> dict:
        status, body = self.request('GET', '/servers/%s' % server_id)
        assert status == 200, body
        return body['server']

    def action(self, server_id: str, body: dict) -> tuple[int, dict | None]:
        return self.request('POST', '/servers/%s/action' % server_id, body)

    def settle(self, server_id: str, timeout: float = 30) -> dict:
        """The server once no task runs on it, whatever its status."""
        deadline = time.monotonic() + timeout
        while True:
            server = self.server(server_id)
            if server['OS-EXT-STS:task_state'] is None:
                return server
            assert time.monotonic() < deadline, server
            time.sleep(0.02)

    def wait(self, server_id: str, status: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            server = self.server(server_id)
            if (server['status'] == status and
                    server['OS-EXT-STS:task_state'] is None):
                return server
            if server['status'] == 'ERROR' and status != 'ERROR':
                raise AssertionError('server went to ERROR: %s' %
                                     server.get('fault'))
            if time.monotonic() > deadline:
                raise AssertionError('server %s still %s/%s, wanted %s' % (
                    server_id, server['status'],
                    server['OS-EXT-STS:task_state'], status))
            time.sleep(0.05)

    def boot(self, name: str = 'vm', flavor: str = '1',
             image: str | None = None, host: str | None = None) -> str:
        body = {'name': name, 'flavorRef': flavor, 'networks': 'none',
                'imageRef': image or self.default_image}
        if host:
            body['host'] = host
        status, resp = self.request('POST', '/servers', {'server': body})
        assert status == 202, resp
        return resp['server']['id']

    @property
    def default_image(self) -> str:
        status, body = self.request('GET', '/images')
        assert status == 200, body
        return body['images'][0]['id']

    def hypervisor(self, host: str) -> dict:
        status, body = self.request('GET', '/os-hypervisors/detail')
        assert status == 200, body
        return next(h for h in body['hypervisors']
                    if h['hypervisor_hostname'] == host)
