"""A policy file override reaches a running ``lifecycle-api`` on SIGHUP.

The operator's workflow: edit ``[oslo_policy] policy_file``, send SIGHUP.
oslo.policy rereads a policy file by itself only when its modification time
grows; a file installed with an older one (``cp -p``, ``install -p``,
``rsync -t``, a configuration management tool keeping the source's time) is
read only when the service rebuilds its enforcer on SIGHUP. The test
installs the override that way, so the refusal before the signal and the
success after it come from the reload, not from the file's newer time.
"""

import os
import signal
import threading
import time

import pytest

from tests.functional import auth_checks
from tests.harness.client import Client
from tests.harness import polling

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLAVOR = {'id': 'it-64', 'name': 'it.64', 'ram': 64, 'vcpus': 1, 'disk': 1}
RULE = 'os_compute_api:os-shelve:shelve_offload'
RELOADED = 'Reloaded the mutable options and the policy'
WAIT = 90


def _install(path: str, text: str, mtime: float) -> None:
    """Replace ``path`` atomically with ``text``, modified at ``mtime``."""
    tmp = path + '.new'
    with open(tmp, 'w') as f:
        f.write(text)
    os.utime(tmp, (mtime, mtime))
    os.rename(tmp, path)


def _wait_for(predicate, what: str, deployment) -> None:
    polling.wait_until(predicate, WAIT, what, check=deployment.check_alive)


def _settled(client, server_id: str, status: str) -> bool:
    server = client.server(server_id)
    assert server['status'] != 'ERROR', server.get('fault')
    return (server['status'] == status and
            server['OS-EXT-STS:task_state'] is None)


def test_policy_override_applies_on_sighup(make_deployment, database_server,
                                           tmp_path):
    policy_file = str(tmp_path / 'policy.yaml')
    # The shipped defaults, written out (shelve_offload: admins only).
    _install(policy_file, '"%s": "rule:context_is_admin"\n' % RULE,
             time.time())
    keep_shelved = {'DEFAULT': {'shelved_offload_time': -1}}
    deployment = make_deployment(
        database_server.create(), 'test:///default',
        hosts={'host-p1': 'group-a'},
        extra={'api': {'oslo_policy': {'policy_file': policy_file},
                       **keep_shelved},
               'conductor': keep_shelved, 'host-p1': keep_shelved})
    api = deployment.processes['api']
    admin = Client(deployment.url, token=None)
    member = Client(deployment.url, token='alice:project-p')
    assert admin.request('POST', '/flavors', {'flavor': FLAVOR})[0] == 200

    server_id = member.boot('policy', flavor=FLAVOR['id'],
                            image=deployment.image_id)
    _wait_for(lambda: _settled(member, server_id, 'ACTIVE'), 'boot',
              deployment)
    status, body = member.action(server_id, {'shelve': None})
    assert status == 202, body
    _wait_for(lambda: _settled(member, server_id, 'SHELVED'), 'shelve',
              deployment)

    status, body = member.action(server_id, {'shelveOffload': None})
    auth_checks.forbidden(status, body, RULE)

    # The override, with a modification time older than the file it
    # replaces: oslo.policy's own check of the time does not see it.
    _install(policy_file, '"%s": "rule:project_member_or_admin"\n' % RULE,
             os.path.getmtime(policy_file) - 3600)
    status, body = member.action(server_id, {'shelveOffload': None})
    auth_checks.forbidden(status, body, RULE)
    assert _settled(member, server_id, 'SHELVED')

    # Requests keep coming while the process reloads: none fails.
    statuses: list[int] = []
    done = threading.Event()

    def traffic() -> None:
        while not done.is_set():
            statuses.append(member.request('GET', '/servers/detail')[0])

    reader = threading.Thread(target=traffic)
    reader.start()
    try:
        for count in range(1, 4):
            api.popen.send_signal(signal.SIGHUP)
            _wait_for(lambda n=count: api.log().count(RELOADED) >= n,
                      'SIGHUP number %d handled' % count, deployment)
    finally:
        done.set()
        reader.join()
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert api.popen.poll() is None, 'SIGHUP stopped lifecycle-api'

    status, body = member.action(server_id, {'shelveOffload': None})
    assert status == 202, body
    _wait_for(lambda: _settled(member, server_id, 'SHELVED_OFFLOADED'),
              'offload', deployment)
    # The override widened that rule only: unshelving to a host stays the
    # admins'.
    status, body = member.action(server_id,
                                 {'unshelve': {'host': 'host-p1'}})
    auth_checks.forbidden(status, body,
                          'os_compute_api:os-shelve:unshelve_to_host')
    assert _settled(member, server_id, 'SHELVED_OFFLOADED')
