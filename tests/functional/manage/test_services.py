"""``lifecycle-manage service list | disable | enable`` on a real
all-in-one: the heartbeat rows the compute services write, and a disabled
host that the scheduler no longer uses -- for a build, a build asking for
it, and an unshelve -- until it is enabled again."""

import datetime

import sqlalchemy as sa

from lifecycle.db import models
from tests.functional.manage.helpers import _boot, _shelve, run, run_json


def _manager(aio, host):
    [svc] = [s for s in aio.services if getattr(s, 'server', None) == host]
    return svc.manager


def _services(config):
    code, doc = run_json(config, 'service', 'list')
    assert code == 0, doc
    return {s['host']: s for s in doc['services']}


def test_list_disable_enable(aio, client, config):
    services = _services(config)
    assert sorted(services) == ['host-a1', 'host-a2', 'host-b1']
    assert {h: (s['status'], s['state'], s['storage_group'])
            for h, s in services.items()} == {
        'host-a1': ('enabled', 'up', 'group-a'),
        'host-a2': ('enabled', 'up', 'group-a'),
        'host-b1': ('enabled', 'up', 'group-b')}
    assert services['host-a1']['binary'] == 'lifecycle-compute'
    assert services['host-a1']['last_seen_at']

    shelved = _boot(client, 'shelved-on-a1', 'host-a1')
    _shelve(client, shelved)

    code, out, _err = run(config, 'service', 'disable', 'host-a1',
                          '--reason', 'disk replacement')
    assert code == 0, out
    assert 'disabled' in out and 'disk replacement' in out
    # Its own heartbeat does not enable it again.
    _manager(aio, 'host-a1').report_capacity()
    assert _services(config)['host-a1']['status'] == 'disabled'
    code, doc = run_json(config, 'service', 'disable', 'host-a1')
    assert code == 0 and doc['changed'] is False

    # Builds go elsewhere; one that asks for the host finds none.
    for i in range(4):
        server_id = _boot(client, 'elsewhere-%d' % i, None)
        assert client.server(server_id)['OS-EXT-SRV-ATTR:host'] != 'host-a1'
    pinned = client.boot('pinned', host='host-a1')
    server = client.wait(pinned, 'ERROR')
    assert server['OS-EXT-SRV-ATTR:host'] is None
    # The unshelve stays in the group, on its other host.
    assert client.action(shelved, {'unshelve': None})[0] == 202
    server = client.wait(shelved, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-a2'

    code, _out, _err = run(config, 'service', 'enable', 'host-a1')
    assert code == 0
    assert _services(config)['host-a1']['status'] == 'enabled'
    again = _boot(client, 'back', 'host-a1')
    assert client.server(again)['OS-EXT-SRV-ATTR:host'] == 'host-a1'


def test_stale_heartbeat_is_down_and_unknown_host_fails(aio, config):
    # A heartbeat older than service_down_time (7200 s in this harness).
    old = models.utcnow() - datetime.timedelta(hours=3)
    with aio.db.session() as session:
        session.execute(sa.update(models.ComputeNode).where(
            models.ComputeNode.host == 'host-b1').values(last_seen_at=old))
    services = _services(config)
    assert services['host-b1']['state'] == 'down'
    assert services['host-a1']['state'] == 'up'

    before = _services(config)
    code, _out, err = run(config, 'service', 'disable', 'no-such-host')
    assert code == 1
    assert 'no compute service on host no-such-host' in err
    assert 'host-a1' in err  # the known hosts are named
    assert _services(config) == before
