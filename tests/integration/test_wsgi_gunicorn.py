"""The WSGI entry point ``lifecycle.wsgi.api:application`` served by
gunicorn (two worker processes, threads), the way an operator deploys the
API: in front of a real ``lifecycle-conductor`` and ``lifecycle-compute``
processes over RabbitMQ and PostgreSQL/MariaDB.

It passes the tenant-isolation and policy checks of the embedded server
(noauth2 tokens), answers oslo.middleware's healthcheck without a token,
and behind a TLS-terminating proxy (``X-Forwarded-Proto: https``, with
``[oslo_middleware] enable_proxy_headers_parsing``) its links are https.
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.functional import auth_checks
from tests.harness.client import Client
from tests.harness.deployment import REPO_ROOT
from tests.harness.deployment import die_with_parent
from tests.harness.deployment import write_conf

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTS = {host: group for group, hosts in auth_checks.GROUP_HOSTS.items()
         for host in hosts}
# Room for two guests of the default flavor (m1.tiny, 512 MiB) per host.
HOST_MEMORY_MB = 1024
START_TIMEOUT = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET with only ``headers``; (0, b'') while
    nothing answers."""
    try:
        status, _headers, body = Client(url, microversion=None).send(
            'GET', '', headers=headers, timeout=30)
    except OSError:
        return 0, b''
    return status, body


class Gunicorn:
    """gunicorn serving the WSGI application of the deployment's config."""

    def __init__(self, deployment) -> None:
        self.log_path = os.path.join(deployment.log_dir, 'gunicorn.log')
        proxy_conf = write_conf(
            os.path.join(deployment.log_dir, 'behind-proxy.conf'),
            {'oslo_middleware': {'enable_proxy_headers_parsing': 'true'}})
        port = _free_port()
        self.root = 'http://127.0.0.1:%d' % port
        self._log = open(self.log_path, 'ab')
        env = dict(os.environ, PYTHONPATH=REPO_ROOT, PYTHONUNBUFFERED='1',
                   LIFECYCLE_CONFIG_FILES='%s,%s' % (deployment.common_conf,
                                                     proxy_conf))
        self.popen = subprocess.Popen(
            [sys.executable, '-m', 'gunicorn', '--workers', '2',
             '--threads', '4', '--bind', '127.0.0.1:%d' % port,
             '--graceful-timeout', '10', 'lifecycle.wsgi.api:application'],
            stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=REPO_ROOT, env=env,
            preexec_fn=die_with_parent)

    def log(self) -> str:
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while _get(self.root + '/healthcheck')[0] != 200:
            assert self.popen.poll() is None, (
                'gunicorn exited with %s:\n%s' % (self.popen.returncode,
                                                  self.log()[-4000:]))
            assert time.monotonic() < deadline, (
                'gunicorn not serving after %d s:\n%s' % (
                    START_TIMEOUT, self.log()[-4000:]))
            time.sleep(0.2)

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


@pytest.fixture
def gunicorn_api(make_deployment, database_server):
    deployment = make_deployment(database_server.create(), 'test:///default',
                                 hosts=HOSTS, host_memory_mb=HOST_MEMORY_MB)
    server = Gunicorn(deployment)
    try:
        server.wait_ready()
        yield deployment, server
    finally:
        status = server.stop()
        print(server.log()[-4000:])
    # gunicorn's arbiter exits 0 after a graceful stop of its workers.
    assert status == 0, status


def test_gunicorn_serves_the_api(gunicorn_api):
    deployment, server = gunicorn_api
    url = server.root + '/v2.1'
    admin = Client(url, token=None)
    auth_checks.check_rules(
        Client(url, token='alice:project-a'),
        Client(url, token='bob:project-b'), admin,
        deployment.image_id, 'project-a')
    # What the workers serve is the deployment's: the embedded API of
    # lifecycle-api sees the flavor the admin created through gunicorn.
    status, body = Client(
        deployment.url, token=None).request('GET', '/flavors')
    assert status == 200, body
    assert 'admin-made' in [f['name'] for f in body['flavors']]


def test_gunicorn_healthcheck_and_links_behind_a_tls_proxy(gunicorn_api):
    deployment, server = gunicorn_api
    status, body = _get(server.root + '/healthcheck',
                        {'Accept': 'application/json'})
    assert status == 200, body
    assert json.loads(body) == {'detailed': False, 'reasons': []}

    member = Client(server.root + '/v2.1',
                                     token='alice:project-l')
    server_id = member.boot('links', image=deployment.image_id)
    member.wait(server_id, 'ACTIVE')
    proxied = {'X-Auth-Token': 'alice:project-l',
               'X-Forwarded-Proto': 'https',
               'X-Forwarded-Host': 'compute.example.org'}

    def links(root: str, headers: dict) -> set[str]:
        status, raw = _get(root + '/v2.1/servers/%s' % server_id,
                           dict(headers, **{'OpenStack-API-Version':
                                            'compute 2.91'}))
        assert status == 200, raw
        return {link['href'] for link in
                json.loads(raw)['server']['links']}

    assert links(server.root, proxied) == {
        'https://compute.example.org/v2.1/servers/%s' % server_id,
        'https://compute.example.org/servers/%s' % server_id}
    assert links(server.root, {'X-Auth-Token': 'alice:project-l'}) == {
        '%s/v2.1/servers/%s' % (server.root, server_id),
        '%s/servers/%s' % (server.root, server_id)}
    # The version document (no token) follows the proxy too.
    status, raw = _get(server.root + '/', proxied)
    assert status in (200, 300), raw
    assert b'https://compute.example.org/v2' in raw, raw
    # The embedded server of lifecycle-api does not parse proxy headers
    # (the option's default): a client cannot make it lie about links.
    embedded_root = deployment.url.removesuffix('/v2.1')
    assert all(link.startswith(embedded_root + '/')
               for link in links(embedded_root, proxied))
    assert member.request('DELETE', '/servers/%s' % server_id)[0] == 204
