"""Watermark escalation when the conductor cannot see the storage.

The conductor and the API run as separate processes in mount namespaces
where the storage groups' directory is an empty tmpfs -- as on controller
hosts that do not mount the compute hosts' shared storage. The compute
hosts of group-a report their storage with the heartbeat; those of group-b
do not (``storage_report_interval = 0``). With a high-water mark of 1 %
(any real file system is fuller than that):

* ``os-storage-groups`` shows group-a's figures as ``reported`` by one of
  its hosts, and group-b's usage as ``unknown``;
* a disk retained in group-a is escalated to a full offload by the
  conductor (uploaded, verified, then freed);
* a disk retained in group-b stays, and the conductor's log says that the
  group's usage is unknown.
"""

import os
import time

import pytest

from tests.harness.deployment import DatabaseServer
from tests.harness.deployment import without_mounts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTS = {'host-a1': 'group-a', 'host-a2': 'group-a', 'host-b1': 'group-b'}
FLAVOR = {'id': 'sr-64', 'name': 'sr.64', 'ram': 64, 'vcpus': 1, 'disk': 1}
WAIT = 90


@pytest.fixture(scope='module')
def postgres():
    server = DatabaseServer('postgresql')
    yield server
    server.drop_all()


def _wait(predicate, what: str, deployment, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        deployment.check_alive()
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, 'timed out waiting for ' + what
        time.sleep(0.2)


@pytest.mark.skipif(os.geteuid() != 0, reason='mount namespaces need root')
def test_watermarks_use_the_compute_hosts_reports(make_deployment, postgres,
                                                 client_for, qemu_dir):
    storage = os.path.join(qemu_dir, 'd0', 'storage')
    os.makedirs(storage, exist_ok=True)
    hidden = without_mounts(storage)
    watermarks = {'shelve': {'storage_high_watermark': 1,
                             'storage_low_watermark': 0,
                             'escalation_interval': 1}}
    reporting = {'compute': {'storage_report_interval': 1}}
    silent = {'compute': {'storage_report_interval': 0}}
    deployment = make_deployment(
        postgres.create(), 'test:///default', hosts=HOSTS,
        extra={'conductor': watermarks, 'host-a1': reporting,
               'host-a2': reporting, 'host-b1': silent},
        wrappers={'conductor': hidden, 'api': hidden})
    assert deployment.storage_path('group-a').startswith(storage)
    client = client_for(deployment.url)
    status, body = client.request('POST', '/flavors', {'flavor': FLAVOR})
    assert status == 200, (status, body)

    def groups():
        status, body = client.request('GET', '/os-storage-groups')
        assert status == 200, (status, body)
        return {g['name']: g for g in body['storage_groups']}

    group_a = _wait(lambda: (lambda g: g if g['usage_source'] == 'reported'
                             else None)(groups()['group-a']),
                    'group-a reported', deployment)
    assert group_a['usage_reported_by'] in ('host-a1', 'host-a2')
    assert group_a['usage_reported_at']
    fs = os.statvfs(deployment.storage_path('group-a'))
    assert group_a['capacity_bytes'] == fs.f_blocks * fs.f_frsize
    assert 0 < group_a['free_bytes'] < group_a['capacity_bytes']
    assert groups()['group-b'] == {
        'name': 'group-b', 'retained_disks': 0, 'retained_bytes': None,
        'capacity_bytes': None, 'free_bytes': None,
        'usage_source': 'unknown', 'usage_reported_by': None,
        'usage_reported_at': None}

    servers = {}
    for host in ('host-a1', 'host-b1'):
        server_id = client.boot('wm-%s' % host, flavor=FLAVOR['id'],
                                image=deployment.image_id, host=host)
        servers[host] = server_id
        client.wait(server_id, 'ACTIVE', timeout=WAIT)
        assert client.action(server_id, {'shelve': None})[0] == 202

    # group-a: escalated by the conductor on the strength of the reports.
    escalated = servers['host-a1']

    def fully_offloaded():
        server = client.server(escalated)
        return (server if server['status'] == 'SHELVED_OFFLOADED' and
                server['OS-EXT-STS:task_state'] is None and
                server['lifecycle:retained_disk'] is None else None)
    _wait(fully_offloaded, 'the escalation of %s' % escalated, deployment)
    assert not os.path.exists(os.path.join(
        deployment.storage_path('group-a'), escalated))
    conductor_log = deployment.processes['conductor'].log()
    assert ('Escalating instance %s to a full offload: storage group '
            'group-a is' % escalated) in conductor_log, conductor_log[-3000:]
    images = [name for name in os.listdir(deployment.images_dir)
              if name.endswith('.json') and escalated in open(
                  os.path.join(deployment.images_dir, name)).read()]
    assert len(images) == 1, images

    # group-b: nothing known, nothing escalated, and the log says why.
    kept = servers['host-b1']
    client.wait(kept, 'SHELVED_OFFLOADED', timeout=WAIT)
    _wait(lambda: 'Storage group group-b: usage unknown' in
          deployment.processes['conductor'].log(),
          'the unknown-usage warning', deployment)
    server = client.server(kept)
    assert server['lifecycle:retained_disk']['storage_group'] == 'group-b'
    assert os.path.exists(deployment.disk_of(kept, 'group-b'))
    assert groups()['group-b']['retained_disks'] == 1
    assert groups()['group-b']['usage_source'] == 'unknown'
