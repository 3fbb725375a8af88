"""Where an offloaded instance comes back: its original host first, the rest
of its storage group when that host is full or down, never another group;
Nova 2.77/2.91 destinations (host, availability zone) are honoured inside the
group and refused with 400 outside it."""

import os
import time

import pytest

from tests.functional.conftest import disk_of


@pytest.fixture
def aio(make_aio):
    # Two m1.tiny fit per host.
    return make_aio(extra={('aio', 'host_memory_mb'): 1024,
                           ('compute', 'report_interval'): 1,
                           ('compute', 'service_down_time'): 3})


@pytest.fixture
def client(aio, client_for):
    return client_for(aio.url)


def _offloaded(client, name='roamer', host='host-a1'):
    server_id = client.boot(name, host=host)
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED_OFFLOADED')
    return server_id


def _fill(client, host, count):
    ids = [client.boot('filler', host=host) for _ in range(count)]
    for server_id in ids:
        client.wait(server_id, 'ACTIVE')
    return ids


def test_original_host_preferred(aio, client):
    server_id = _offloaded(client)
    client.action(server_id, {'unshelve': None})
    assert client.wait(server_id, 'ACTIVE')['OS-EXT-SRV-ATTR:host'] == \
        'host-a1'


def test_full_original_host_falls_back_inside_the_group(aio, client):
    server_id = _offloaded(client)
    inode = os.stat(disk_of(aio, server_id)).st_ino
    _fill(client, 'host-a1', 2)
    client.action(server_id, {'unshelve': None})
    server = client.wait(server_id, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-a2'
    assert os.stat(disk_of(aio, server_id)).st_ino == inode
    assert aio.driver.get_disk_paths(server_id) == [disk_of(aio, server_id)]


def test_full_group_records_a_fault_and_keeps_the_disk(aio, client):
    server_id = _offloaded(client)
    _fill(client, 'host-a1', 2)
    fillers_a2 = _fill(client, 'host-a2', 2)
    client.action(server_id, {'unshelve': None})
    server = client.wait(server_id, 'SHELVED_OFFLOADED')
    assert 'No valid host' in server['fault']['message']
    assert 'storage group group-a' in server['fault']['message']
    assert server['lifecycle:retained_disk']['storage_group'] == 'group-a'
    assert os.path.exists(disk_of(aio, server_id))
    # host-b1 had room all along: the group is the boundary.
    assert client.hypervisor('host-b1')['memory_mb_used'] == 0

    client.request('DELETE', '/servers/%s' % fillers_a2[0])
    deadline = time.monotonic() + 30
    while client.hypervisor('host-a2')['memory_mb_used'] != 512:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.action(server_id, {'unshelve': None})
    assert client.wait(server_id, 'ACTIVE')['OS-EXT-SRV-ATTR:host'] == \
        'host-a2'


def test_down_host_is_not_scheduled_to(aio, client):
    server_id = _offloaded(client)
    compute_a1 = next(s for s in aio.services if s.server == 'host-a1')
    compute_a1.stop()
    aio.services.remove(compute_a1)
    time.sleep(4)  # > service_down_time
    client.action(server_id, {'unshelve': None})
    assert client.wait(server_id, 'ACTIVE')['OS-EXT-SRV-ATTR:host'] == \
        'host-a2'


def test_unshelve_to_host_outside_the_group_is_refused(aio, client):
    server_id = _offloaded(client)
    before = client.server(server_id)
    status, body = client.action(server_id,
                                 {'unshelve': {'host': 'host-b1'}})
    assert status == 400
    assert 'storage group group-a' in body['badRequest']['message']
    after = client.server(server_id)
    assert after['status'] == before['status'] == 'SHELVED_OFFLOADED'
    assert after['OS-EXT-STS:task_state'] is None
    assert (after['lifecycle:retained_disk'] ==
            before['lifecycle:retained_disk'])

    status, body = client.action(server_id,
                                 {'unshelve': {'host': 'no-such-host'}})
    assert status == 400


def test_unshelve_to_host_inside_the_group(aio, client):
    server_id = _offloaded(client)
    client.action(server_id, {'unshelve': {'host': 'host-a2'}})
    assert client.wait(server_id, 'ACTIVE')['OS-EXT-SRV-ATTR:host'] == \
        'host-a2'


def test_unshelve_to_availability_zone(aio, client):
    status, body = client.request('POST', '/os-aggregates', {'aggregate': {
        'name': 'zone-a2', 'availability_zone': 'az-a2'}})
    assert status == 200, body
    zone_a2 = body['aggregate']['id']
    status, _ = client.request(
        'POST', '/os-aggregates/%s/action' % zone_a2,
        {'add_host': {'host': 'host-a2'}})
    assert status == 200
    status, body = client.request('POST', '/os-aggregates', {'aggregate': {
        'name': 'zone-b1', 'availability_zone': 'az-b1'}})
    zone_b1 = body['aggregate']['id']
    client.request('POST', '/os-aggregates/%s/action' % zone_b1,
                   {'add_host': {'host': 'host-b1'}})

    server_id = _offloaded(client)
    client.microversion = '2.77'
    assert client.action(server_id, {'unshelve': {
        'availability_zone': 'az-a2'}})[0] == 202
    assert client.wait(server_id, 'ACTIVE')['OS-EXT-SRV-ATTR:host'] == \
        'host-a2'

    client.microversion = '2.91'
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED_OFFLOADED')
    # A zone with no host of the disk's storage group cannot take it.
    client.action(server_id, {'unshelve': {'availability_zone': 'az-b1'}})
    server = client.wait(server_id, 'SHELVED_OFFLOADED')
    assert 'availability zone az-b1' in server['fault']['message']


def test_destination_needs_an_offloaded_instance(make_aio, client_for):
    aio = make_aio(extra={(None, 'shelved_offload_time'): -1})
    client = client_for(aio.url)
    server_id = client.boot('stays', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED')
    status, _ = client.action(server_id, {'unshelve': {'host': 'host-a2'}})
    assert status == 409
    assert client.server(server_id)['status'] == 'SHELVED'
