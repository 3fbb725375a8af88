"""200 instances unshelved at once over 20 hosts in two storage groups
(libvirt test driver): no host is ever over capacity, the usage counters
agree with the instances placed, every instance is either placed inside its
own storage group or offloaded with a recorded fault."""

import collections
import concurrent.futures
import time

import pytest

pytestmark = pytest.mark.slow

HOSTS_PER_GROUP = 10
SLOTS_PER_HOST = 12          # m1.tiny (512 MiB) per host, RAM-bound
INSTANCES = 200
FILLERS_PER_A_HOST = 4       # leaves group-a room for 80 of its 100


def _hosts():
    return ['host-%s%02d:group-%s' % (g, i, g) for g in 'ab'
            for i in range(1, HOSTS_PER_GROUP + 1)]


def _wait_all(client, ids, done, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        status, body = client.request('GET', '/servers/detail?limit=1000')
        assert status == 200, body
        servers = {s['id']: s for s in body['servers'] if s['id'] in ids}
        if len(servers) == len(ids) and all(
                s['OS-EXT-STS:task_state'] is None and done(s)
                for s in servers.values()):
            return servers
        assert time.monotonic() < deadline, collections.Counter(
            (s['status'], s['OS-EXT-STS:task_state'])
            for s in servers.values())
        time.sleep(0.25)


def _parallel(fn, items, workers=32):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def test_mass_unshelve_never_overcommits(make_aio, client_for):
    aio = make_aio(extra={('aio', 'hosts'): _hosts(),
                          ('aio', 'host_memory_mb'): SLOTS_PER_HOST * 512,
                          ('aio', 'host_vcpus'): SLOTS_PER_HOST})
    client = client_for(aio.url)
    image = client.default_image

    ids = _parallel(lambda i: client.boot('mass-%03d' % i, image=image),
                    range(INSTANCES))
    servers = _wait_all(client, set(ids), lambda s: s['status'] == 'ACTIVE')
    group_of = {sid: s['OS-EXT-SRV-ATTR:host'].split('-')[1][0]
                for sid, s in servers.items()}

    assert all(code == 202 for code, _ in _parallel(
        lambda sid: client.action(sid, {'shelve': None}), ids))
    _wait_all(client, set(ids), lambda s: s['status'] == 'SHELVED_OFFLOADED')

    fillers = _parallel(
        lambda n: client.boot('filler-%03d' % n, image=image,
                              host='host-a%02d' % (n % HOSTS_PER_GROUP + 1)),
        range(FILLERS_PER_A_HOST * HOSTS_PER_GROUP))
    _wait_all(client, set(fillers), lambda s: s['status'] == 'ACTIVE')

    started = time.monotonic()
    assert all(code == 202 for code, _ in _parallel(
        lambda sid: client.action(sid, {'unshelve': None}), ids,
        workers=INSTANCES))
    servers = _wait_all(client, set(ids), lambda s: s['status'] in (
        'ACTIVE', 'SHELVED_OFFLOADED'))
    elapsed = time.monotonic() - started

    placed = {sid: s for sid, s in servers.items() if s['status'] == 'ACTIVE'}
    faulted = {sid: s for sid, s in servers.items()
               if s['status'] == 'SHELVED_OFFLOADED'}
    for sid, server in placed.items():
        host_group = server['OS-EXT-SRV-ATTR:host'].split('-')[1][0]
        assert host_group == group_of[sid], 'left its storage group'
    for server in faulted.values():
        assert 'No valid host' in server['fault']['message']
        assert server['lifecycle:retained_disk'] is not None
    by_group = collections.Counter(group_of[sid] for sid in placed)
    shelved_a = sum(1 for g in group_of.values() if g == 'a')
    room_a = HOSTS_PER_GROUP * (SLOTS_PER_HOST - FILLERS_PER_A_HOST)
    assert by_group['a'] == min(shelved_a, room_a)
    assert by_group['b'] == INSTANCES - shelved_a
    assert len(faulted) == max(shelved_a - room_a, 0)

    status, body = client.request('GET', '/os-hypervisors/detail')
    usage = {h['hypervisor_hostname']: h for h in body['hypervisors']}
    _, body = client.request('GET', '/servers/detail?limit=1000')
    active_ram = collections.Counter()
    for server in body['servers']:
        if server['status'] == 'ACTIVE':
            active_ram[server['OS-EXT-SRV-ATTR:host']] += 512
    for host, hyp in usage.items():
        assert hyp['memory_mb_used'] <= hyp['memory_mb'], host
        assert hyp['memory_mb_used'] == active_ram[host], host

    stats = next(s.manager.stats for s in aio.services
                 if s.topic == 'lifecycle-conductor')
    print('\nmass unshelve: %d placed (a=%d b=%d), %d faulted, %.1f s, '
          'claim retries %d (%.1f%% of claims)' % (
              len(placed), by_group['a'], by_group['b'], len(faulted),
              elapsed, stats['claim_retries'],
              100.0 * stats['claim_retries'] / max(stats['claims'], 1)))
