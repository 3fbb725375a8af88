"""The REST API behind a real Keystone (tests/functional/keystone_fixture.py):
keystonemiddleware's auth_token in front, tokens of two projects' members
and of the admin through openstacksdk password auth; python-openstackclient
against the Keystone catalog."""

import datetime
import json
import os
import subprocess
import sys
import time

import pytest
from keystoneauth1 import loading as ks_loading

from lifecycle.conf import CONF
from tests.functional import auth_checks
from tests.functional.glance_fixture import free_port
from tests.functional import keystone_fixture
from tests.harness.client import Client


keystone = keystone_fixture.keystone

def _start(keystone, make_aio, extra=None):
    # The password plugin's options of [keystone_authtoken] are registered
    # when keystonemiddleware loads the plugin; the overrides need them now.
    CONF.register_opts(ks_loading.get_auth_plugin_conf_options('password'),
                       group='keystone_authtoken')
    overrides = keystone.authtoken_overrides()
    overrides[('api', 'port')] = free_port()
    overrides.update(extra or {})
    return make_aio(extra=overrides)


@pytest.fixture
def cloud(keystone, make_aio):
    aio = _start(keystone, make_aio)
    conns = {user: keystone.connect(user, compute_endpoint_override=aio.url)
             for user in ('member-a', 'member-b', 'admin')}
    yield keystone, aio, conns
    for conn in conns.values():
        conn.close()


def _client(aio, conn):
    return Client(aio.url, token=conn.session.get_token)


def test_isolation_and_policy_with_keystone(cloud):
    keystone, aio, conns = cloud
    auth_checks.check_rules(
        _client(aio, conns['member-a']), _client(aio, conns['member-b']),
        _client(aio, conns['admin']), aio.default_image['id'],
        keystone.project_ids['project-a'])


def test_openstacksdk_member_sees_only_its_project(cloud):
    keystone, aio, conns = cloud
    a, b = conns['member-a'], conns['member-b']
    server = a.compute.create_server(name='sdk-a', image_id=aio.default_image[
        'id'], flavor_id='1', networks='none')
    a.compute.wait_for_server(server, status='ACTIVE', wait=60)
    assert server.id in [s.id for s in a.compute.servers()]
    assert server.id not in [s.id for s in b.compute.servers()]
    import openstack.exceptions as sdk_exc
    with pytest.raises(sdk_exc.NotFoundException):
        b.compute.get_server(server.id)
    with pytest.raises(sdk_exc.NotFoundException):
        b.compute.shelve_server(server.id)
    with pytest.raises(sdk_exc.NotFoundException):
        b.compute.delete_server(server.id, ignore_missing=False)
    with pytest.raises(sdk_exc.ForbiddenException):
        a.compute.create_flavor(name='x', ram=64, vcpus=1, disk=1)
    assert a.compute.get_server(server.id).status == 'ACTIVE'
    a.compute.delete_server(server.id)
    a.compute.wait_for_delete(server, wait=60)


def test_bad_revoked_and_expired_tokens_are_401(cloud):
    keystone, aio, conns = cloud
    status, body = Client(aio.url, token='garbage').request(
        'GET', '/servers')
    assert status == 401, body
    status, body = Client(aio.url, token=None).request(
        'GET', '/servers')
    assert status == 401, body
    # Revoked: the token of a session that then logs out.
    member = keystone.connect('member-a')
    token = member.session.get_token()
    assert Client(aio.url, token=token).request(
        'GET', '/servers')[0] == 200
    member.identity.delete('/auth/tokens', headers={'X-Subject-Token': token})
    assert Client(aio.url, token=token).request(
        'GET', '/servers')[0] == 401
    member.close()
    # Expired: a token of an application credential that expires in 3 s
    # expires with it.
    admin = conns['admin']
    user_id = keystone.user_ids['member-a']
    member = keystone.connect('member-a')
    expires = (datetime.datetime.now(datetime.UTC) +
               datetime.timedelta(seconds=3))
    cred = member.identity.create_application_credential(
        user_id, name='short-%d' % time.time_ns(), expires_at=expires
        .strftime('%Y-%m-%dT%H:%M:%S'))
    import openstack
    short = openstack.connect(auth_type='v3applicationcredential', auth={
        'auth_url': keystone.auth_url,
        'application_credential_id': cred.id,
        'application_credential_secret': cred.secret})
    token = short.session.get_token()
    assert Client(aio.url, token=token).request(
        'GET', '/servers')[0] == 200
    time.sleep(4)
    assert Client(aio.url, token=token).request(
        'GET', '/servers')[0] == 401
    short.close()
    member.close()
    del admin
    # The version documents need no token.
    assert Client(aio.url.rsplit('/', 1)[0], token=None).request(
        'GET', '/')[0] == 200


def _openstack(keystone, user: str, *args: str) -> subprocess.CompletedProcess:
    creds = keystone.credentials(user)
    env = dict(os.environ,
               OS_AUTH_URL=creds['auth_url'], OS_USERNAME=creds['username'],
               OS_PASSWORD=creds['password'],
               OS_PROJECT_NAME=creds['project_name'],
               OS_USER_DOMAIN_NAME='Default',
               OS_PROJECT_DOMAIN_NAME='Default', OS_REGION_NAME='RegionOne',
               OS_IDENTITY_API_VERSION='3', OS_INTERFACE='public')
    cmd = [os.path.join(os.path.dirname(sys.executable), 'openstack'), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env,
                          timeout=120)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, (proc.args, proc.stdout, proc.stderr)
    return proc.stdout


def _status(keystone, user: str, server_id: str) -> dict:
    return json.loads(_ok(_openstack(keystone, user, 'server', 'show',
                                     server_id, '-f', 'json')))


def _wait(keystone, user, server_id, status, timeout=90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        shown = _status(keystone, user, server_id)
        if (shown['status'] == status and
                not shown.get('OS-EXT-STS:task_state')):
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)


def test_openstack_client_through_the_catalog(keystone, make_aio,
                                              glance_server):
    """python-openstackclient, the way a user runs it: the compute and image
    endpoints (this API, a real Glance) from the Keystone catalog, ``server
    create --image`` (which sends imageRef plus an image-to-local block
    device mapping)."""
    aio = _start(keystone, make_aio, {
        ('image', 'source'): 'glance',
        ('glance', 'auth_type'): 'none',
        ('glance', 'endpoint_override'): glance_server.endpoint})
    admin = keystone.connect('admin')
    identity = admin.identity
    made = []
    for kind, url in (('compute', aio.url),
                      ('image', glance_server.endpoint)):
        service = identity.create_service(
            name='%s-%d' % (kind, time.time_ns()), type=kind)
        made.append((service, identity.create_endpoint(
            service_id=service.id, interface='public', url=url,
            region_id='RegionOne')))
    try:
        image = aio.default_image['id']
        created = json.loads(_ok(_openstack(
            keystone, 'member-a', 'server', 'create', '--image', image,
            '--flavor', '1', '--nic', 'none', '-f', 'json', 'osc-vm')))
        server_id = created['id']
        _wait(keystone, 'member-a', server_id, 'ACTIVE')
        listed = json.loads(_ok(_openstack(keystone, 'member-a', 'server',
                                           'list', '-f', 'json')))
        assert server_id in [s['ID'] for s in listed]
        listed = json.loads(_ok(_openstack(keystone, 'member-b', 'server',
                                           'list', '-f', 'json')))
        assert server_id not in [s['ID'] for s in listed]
        _ok(_openstack(keystone, 'member-a', 'server', 'shelve', server_id))
        _wait(keystone, 'member-a', server_id, 'SHELVED_OFFLOADED')
        _ok(_openstack(keystone, 'member-a', 'server', 'unshelve',
                       server_id))
        _wait(keystone, 'member-a', server_id, 'ACTIVE')
        _ok(_openstack(keystone, 'member-a', 'server', 'shelve', server_id))
        _wait(keystone, 'admin', server_id, 'SHELVED_OFFLOADED')
        # (the client does not show the project's own attribute)
        as_admin = Client(aio.url, token=admin.session.get_token)
        host = as_admin.server(server_id)['lifecycle:retained_disk']['host']
        refused = _openstack(keystone, 'member-a', 'server', 'unshelve',
                             '--host', host, server_id)
        assert refused.returncode != 0
        assert 'unshelve_to_host' in refused.stderr + refused.stdout
        _ok(_openstack(keystone, 'admin', 'server', 'unshelve', '--host',
                       host, server_id))
        shown = _wait(keystone, 'admin', server_id, 'ACTIVE')
        assert shown['OS-EXT-SRV-ATTR:host'] == host
        _ok(_openstack(keystone, 'member-a', 'server', 'delete', '--wait',
                       server_id))
        gone = _openstack(keystone, 'member-a', 'server', 'show', server_id)
        assert gone.returncode != 0
    finally:
        for service, endpoint in made:
            identity.delete_endpoint(endpoint)
            identity.delete_service(service)
        admin.close()
