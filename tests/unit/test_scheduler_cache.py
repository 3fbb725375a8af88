"""The conductor scheduler's host states: the HostStateCache (boot
requests) and the storage-group read (unshelve requests) give the same
hosts, usage and aggregates, in the same order, as reading every compute
node afresh -- after claims and releases made by another "process" (a
second Database on the same database), capacity reports, hosts added,
disabled and moved between aggregates. Real databases: SQLite, and
PostgreSQL/MariaDB when reachable."""

import datetime
import time
import uuid

import pytest
import sqlalchemy as sa
from oslo_utils import timeutils

from filters import host_state
from lifecycle.conductor import scheduler as scheduler_mod
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import migration
from tests.conftest import require
from tests.conftest import tcp_reachable

SERVERS = {
    'postgresql': ('127.0.0.1', 5432,
                   'postgresql+psycopg2://postgres@127.0.0.1:5432/%s'),
    'mysql': ('127.0.0.1', 3306, 'mysql+pymysql://root@127.0.0.1:3306/%s'),
}


@pytest.fixture(params=['sqlite', 'postgresql', 'mysql'])
def url(request, tmp_path):
    if request.param == 'sqlite':
        yield 'sqlite:///%s' % (tmp_path / 'sched.sqlite')
        return
    host, port, template = SERVERS[request.param]
    require(tcp_reachable(host, port),
            '%s at %s:%d' % (request.param, host, port))
    name = 'lifecycle_sched_%s' % uuid.uuid4().hex[:10]
    admin_db = 'postgres' if request.param == 'postgresql' else ''
    admin = sa.create_engine(template % admin_db, isolation_level='AUTOCOMMIT')
    with admin.connect() as conn:
        conn.exec_driver_sql('CREATE DATABASE %s' % name)
    try:
        yield template % name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql('DROP DATABASE %s' % name)
        admin.dispose()


@pytest.fixture
def dbs(url):
    """The conductor's Database and another process's, same database."""
    ours = db_api.Database(url)
    migration.sync(ours)
    theirs = db_api.Database(url)
    yield ours, theirs
    ours.dispose()
    theirs.dispose()


def _report(db, host, **extra):
    db.compute_node_report(host, dict({
        'hypervisor_hostname': host, 'hypervisor_type': 'QEMU',
        'vcpus': 4, 'memory_mb': 4096, 'reserved_memory_mb': 0,
        'cpu_allocation_ratio': 1.0, 'ram_allocation_ratio': 1.0}, **extra))


def _instance(db, group=None, shelved_host=None, vcpus=1, memory_mb=512):
    values = {'uuid': str(uuid.uuid4()), 'display_name': 'i',
              'user_id': 'u', 'project_id': 'p', 'image_ref': 'none',
              'flavorid': 'f', 'flavor_name': 'f', 'vcpus': vcpus,
              'memory_mb': memory_mb, 'root_gb': 1,
              'vm_state': 'building', 'task_state': 'scheduling'}
    sysmeta = {}
    if group:
        sysmeta = {'shelved_storage_group': group,
                   'shelved_host': shelved_host,
                   'shelved_disk': '%s/disk' % values['uuid']}
        values.update(vm_state='shelved_offloaded', task_state='unshelving')
    return db.instance_create(values, system_metadata=sysmeta)


def _view(states):
    return [(s.host, s.vcpus_total, s.vcpus_used, s.free_ram_mb,
             s.total_usable_ram_mb,
             [(a.id, a.name, a.hosts, a.metadata) for a in s.aggregates])
            for s in states]


def _fresh(db):
    """Every host read afresh: a new scheduler's first (full) read."""
    return scheduler_mod.Scheduler(db).up_host_states()


def test_cache_follows_every_change(dbs):
    ours, theirs = dbs
    for i in range(8):
        _report(theirs, 'h%d' % i)
    group_a = theirs.aggregate_create('sg-a', {'storage_group': 'a'})
    group_b = theirs.aggregate_create('sg-b', {'storage_group': 'b'})
    zone = theirs.aggregate_create('zone', {'availability_zone': 'z1'})
    for i in range(4):
        theirs.aggregate_add_host(group_a.id, 'h%d' % i)
        theirs.aggregate_add_host(group_b.id, 'h%d' % (i + 4))
    theirs.aggregate_add_host(zone.id, 'h4')  # no instance on h4
    scheduler = scheduler_mod.Scheduler(ours)
    assert _view(scheduler.up_host_states()) == _view(_fresh(ours))

    # Claims and releases by another process.
    claimed = []
    for i in range(5):
        instance = _instance(theirs)
        theirs.claim(instance.uuid, 'h%d' % (i % 3))
        claimed.append(instance.uuid)
        assert _view(scheduler.up_host_states()) == _view(_fresh(ours))
    theirs.release_claim(claimed[0])
    assert _view(scheduler.up_host_states()) == _view(_fresh(ours))
    # ... followed by re-reading the changed rows only.
    assert scheduler.host_states.full_loads == 1

    # Capacity reports, a disabled host, a new host.
    # A huge host: id * memory_mb past 2**31 (the fingerprint's sums).
    _report(theirs, 'h5', vcpus=16, memory_mb=2 ** 30)
    _report(theirs, 'h6', disabled=True)
    _report(theirs, 'h8')
    states = scheduler.up_host_states()
    assert _view(states) == _view(_fresh(ours))
    assert 'h6' not in [s.host for s in states]
    assert 'h8' in [s.host for s in states]

    # Aggregates: metadata, hosts moved.
    theirs.aggregate_set_metadata(zone.id, {'availability_zone': 'z2'})
    assert _view(scheduler.up_host_states()) == _view(_fresh(ours))
    theirs.aggregate_remove_host(group_b.id, 'h7')
    theirs.aggregate_add_host(group_a.id, 'h7')
    assert _view(scheduler.up_host_states()) == _view(_fresh(ours))


def test_storage_group_read_same_as_filtering_every_host(dbs):
    ours, theirs = dbs
    for i in range(10):
        _report(theirs, 'h%d' % i)
    group_a = theirs.aggregate_create('sg-a', {'storage_group': 'a'})
    other = theirs.aggregate_create('other', {'availability_zone': 'z1'})
    for i in (1, 3, 5, 7):
        theirs.aggregate_add_host(group_a.id, 'h%d' % i)
    theirs.aggregate_add_host(other.id, 'h3')
    filler = _instance(theirs, vcpus=4, memory_mb=1024)
    theirs.claim(filler.uuid, 'h5')  # h5 full: filtered out
    scheduler = scheduler_mod.Scheduler(ours)
    for shelved_host in ('h1', 'h3', 'h7'):
        instance = _instance(theirs, group='a', shelved_host=shelved_host)
        spec = scheduler.request_spec(instance, {})
        everyone = host_state.filter_and_weigh(
            _fresh(ours), spec, scheduler.filters, scheduler.weighers)
        chosen = scheduler.select_destinations(instance, {})
        assert chosen == [s.host for s in everyone]
        assert chosen[0] == shelved_host
        assert 'h5' not in chosen
        assert set(chosen) <= {'h1', 'h3', 'h7'}
    assert _view(scheduler.up_host_states_of(storage_group='a')) == _view(
        [s for s in _fresh(ours) if s.host in ('h1', 'h3', 'h5', 'h7')])


def test_a_host_that_stops_reporting_drops_out_with_no_write(dbs):
    """Time alone takes a host out: the down hosts come with the
    fingerprint, for the cutoff of each request -- nothing is written
    meanwhile, so nothing else would tell the cache."""
    ours, theirs = dbs
    for host in ('h0', 'h1', 'h2'):
        _report(theirs, host)
    scheduler = scheduler_mod.Scheduler(ours)
    assert [s.host for s in scheduler.up_host_states()] == ['h0', 'h1', 'h2']
    time.sleep(1.1)
    _report(theirs, 'h1')  # a heartbeat alone: nothing re-read
    assert [s.host for s in scheduler.up_host_states()] == ['h0', 'h1', 'h2']
    assert scheduler.host_states.full_loads == 1

    h1_seen = {row.host: row.last_seen_at
               for row in ours.compute_node_states()}['h1']
    down_time = CONF.compute.service_down_time
    try:
        # h0 and h2 last reported more than 1 s before h1.
        timeutils.set_time_override(
            h1_seen + datetime.timedelta(seconds=down_time - 0.5))
        assert [s.host for s in scheduler.up_host_states()] == ['h1']
        assert _view(scheduler.up_host_states()) == _view(_fresh(ours))
        CONF.set_override('service_down_time', down_time + 3600,
                          group='compute')
        assert [s.host for s in scheduler.up_host_states()] == [
            'h0', 'h1', 'h2']
    finally:
        timeutils.clear_time_override()
        CONF.clear_override('service_down_time', group='compute')
    assert scheduler.host_states.full_loads == 1


def test_heartbeats_are_not_re_read_yet_bring_a_host_back(dbs):
    """A report that changes nothing but the heartbeat leaves the row's
    ``updated_at`` alone, so the cache re-reads no row for it (with every
    host heartbeating every report_interval, that was a fifth of all rows
    at each decision); a host that was down is back at its first heartbeat
    all the same, and a report of a new capacity is re-read."""
    ours, theirs = dbs
    for host in ('h0', 'h1', 'h2'):
        _report(theirs, host)
    scheduler = scheduler_mod.Scheduler(ours)
    cache = scheduler.host_states
    assert [s.host for s in scheduler.up_host_states()] == ['h0', 'h1', 'h2']
    before = {row.host: row for row in ours.compute_node_states()}
    time.sleep(1.1)  # MySQL's whole seconds
    _report(theirs, 'h1')
    after = {row.host: row for row in ours.compute_node_states()}
    assert after['h1'].changed_at == before['h1'].changed_at
    assert after['h1'].last_seen_at > before['h1'].last_seen_at
    assert [s.host for s in scheduler.up_host_states()] == ['h0', 'h1', 'h2']
    assert cache.rows_reread == 0

    down_time = CONF.compute.service_down_time
    CONF.set_override('service_down_time', 1, group='compute')
    try:
        time.sleep(1.1)
        assert scheduler.up_host_states() == []
        _report(theirs, 'h2')  # back, by a heartbeat alone
        assert [s.host for s in scheduler.up_host_states()] == ['h2']
        assert _view(scheduler.up_host_states()) == _view(_fresh(ours))
    finally:
        CONF.set_override('service_down_time', down_time, group='compute')
    assert cache.rows_reread == 0

    _report(theirs, 'h0', vcpus=8)
    states = scheduler.up_host_states()
    assert _view(states) == _view(_fresh(ours))
    assert [s.vcpus_total for s in states if s.host == 'h0'] == [8]
    assert cache.rows_reread >= 1
    assert cache.full_loads == 1


def test_down_hosts_past_mysqls_group_concat_limit(dbs, url):
    """The down nodes' ids come as one group_concat string, which MySQL cuts
    at group_concat_max_len: the count and sum that come with it tell, and
    the ids are then read on their own. The limit is lowered for this
    connection so that three ids are past it."""
    if not url.startswith('mysql'):
        pytest.skip('group_concat_max_len is MySQL/MariaDB only')
    ours, theirs = dbs
    for host in ('h0', 'h1', 'h2', 'h3'):
        _report(theirs, host)
    ours.engine.dispose()
    sa.event.listen(ours.engine, 'connect', lambda conn, _record: (
        conn.cursor().execute('SET SESSION group_concat_max_len = 4')))
    scheduler = scheduler_mod.Scheduler(ours)
    assert [s.host for s in scheduler.up_host_states()] == [
        'h0', 'h1', 'h2', 'h3']
    down_time = CONF.compute.service_down_time
    CONF.set_override('service_down_time', 1, group='compute')
    try:
        time.sleep(1.1)
        _report(theirs, 'h3')
        ids = {row.host: row.id for row in ours.compute_node_states()}
        _fp, down = ours.compute_node_fingerprint(
            scheduler_mod._up_cutoff())
        assert down == {ids['h0'], ids['h1'], ids['h2']}
        assert [s.host for s in scheduler.up_host_states()] == ['h3']
    finally:
        CONF.set_override('service_down_time', down_time, group='compute')
