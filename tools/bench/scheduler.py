"""Comparison 3: scheduler scale.

The decision the conductor makes for each request, timed per request with
100, 1,000 and 10,000 compute hosts: ``Scheduler.select_destinations``
(host states built from the database by ``Scheduler.up_host_states``, the
``filters/`` filters and weighers through ``host_state.filter_and_weigh``)
followed by the claim (``Placement.claim_first_fit``: the
conditional UPDATE of ``Database.claim``) -- the same objects and calls as
``ConductorManager.unshelve_instance``/``build_instance``, without RPC.

Hosts: 64 vCPUs and 256 GiB each, with varied usage; storage groups of 20
hosts (one aggregate each, ``storage_group`` metadata). Requests:

* **unshelve**: an offloaded instance with a retained disk in a random
  storage group (hints ``storage_group`` and ``shelved_host``);
* **boot**: an instance with no hints (every host passes the filters and
  is weighed).

The cloud is in its steady state: the hosts registered an hour before,
each last heard from at a random moment of the last ``[compute]
report_interval``, and heartbeating on: before each request (untimed),
the heartbeats due by then go through ``Database.compute_node_report``,
as the compute services send them -- ``hosts / report_interval`` per
second of the scheduler's own time (the time spent writing them left
out, as other processes write them in a real cloud), and, before the
first request, the ``HostStateCache.MARGIN`` seconds' worth that a real
cloud would have just written; a process of their own writes them.
Each claim is released afterwards (untimed) so every request sees the
same hosts. Databases: a SQLite file
and a fresh PostgreSQL database. Breakdown per request: the host states
(``up_host_states``: the scheduler's HostStateCache brought up to date,
for boot; ``up_host_states_of``: the storage group's hosts read afresh,
for unshelve), the rest of ``select_destinations`` (filters + weighers +
sort), the claim. For reference: filter + weigh alone over host states
built once in memory; the "commit floor", a write transaction that
changes nothing (no claim that is durable in the database can cost less);
and the cold load, the first ``up_host_states`` of a new scheduler (every
host read). ``[compute] service_down_time`` is raised for the run: the
heartbeats follow the requests' clock, which runs slower than the wall
clock, and no host may drop out for that.
"""

import datetime
import multiprocessing
import os
import random
import shutil
import time
import uuid

import sqlalchemy as sa

from filters import host_state
from lifecycle.conductor import manager as conductor_manager
from lifecycle.conductor import scheduler as scheduler_mod
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import migration
from lifecycle.db import models
from lifecycle import names
from tools.bench import common

GROUP_SIZE = 20
TARGETS_MS = {1000: 3.0, 10000: 30.0}


def _capacity(host: str) -> dict:
    """What each host reports at every heartbeat (the same each time)."""
    return {'hypervisor_hostname': host, 'hypervisor_type': 'QEMU',
            'storage_path': '/srv/%s' % host, 'vcpus': 64,
            'memory_mb': 262144, 'reserved_memory_mb': 512,
            'cpu_allocation_ratio': 4.0, 'ram_allocation_ratio': 1.0}


def _populate(db, hosts: int, requests: int, rng: random.Random) -> dict:
    now = models.utcnow()
    interval = CONF.compute.report_interval
    host_names = ['node-%05d' % i for i in range(hosts)]
    rows = []
    for name in host_names:
        vcpus_used = rng.randint(0, 48)
        rows.append(dict(
            _capacity(name), host=name,
            vcpus_used=vcpus_used, memory_mb_used=vcpus_used * 2048,
            running_vms=vcpus_used, disabled=False,
            last_seen_at=now - datetime.timedelta(
                seconds=rng.uniform(0, interval)),
            created_at=now - datetime.timedelta(hours=1)))
    groups = {}
    with db.session() as session:
        session.execute(sa.insert(models.ComputeNode), rows)
        for g in range(0, hosts, GROUP_SIZE):
            group = 'sg-%04d' % (g // GROUP_SIZE)
            agg = models.Aggregate(uuid=str(uuid.uuid4()),
                                   name='storage-%s' % group,
                                   created_at=now)
            session.add(agg)
            session.flush()
            members = host_names[g:g + GROUP_SIZE]
            session.execute(sa.insert(models.AggregateHost), [
                {'aggregate_id': agg.id, 'host': h} for h in members])
            session.execute(sa.insert(models.AggregateMetadata), [
                {'aggregate_id': agg.id, 'key': names.AGGREGATE_STORAGE_GROUP,
                 'value': group}])
            groups[group] = members
    instances = {'unshelve': [], 'boot': []}
    group_names = sorted(groups)
    for kind in instances:
        for i in range(requests):
            values = {'uuid': str(uuid.uuid4()),
                      'display_name': 'sched-%s-%d' % (kind, i),
                      'user_id': 'bench', 'project_id': 'bench',
                      'image_ref': 'none', 'flavorid': 'bench',
                      'flavor_name': 'bench', 'vcpus': 1, 'memory_mb': 512,
                      'root_gb': 1}
            if kind == 'unshelve':
                group = rng.choice(group_names)
                sysmeta = {names.SHELVED_AT: now.isoformat(),
                           names.SHELVED_HOST: rng.choice(groups[group]),
                           names.SHELVED_STORAGE_GROUP: group,
                           names.SHELVED_DISK: '%s/disk' % values['uuid']}
                values.update(vm_state='shelved_offloaded',
                              task_state='unshelving')
            else:
                sysmeta = {}
                values.update(vm_state='building', task_state='scheduling')
            db.instance_create(values, system_metadata=sysmeta)
            instances[kind].append(values['uuid'])
    return instances


class _TimedScheduler(scheduler_mod.Scheduler):
    """The conductor's scheduler, recording how long getting the host
    states (``up_host_states``: the cache brought up to date;
    ``up_host_states_of``: a storage group's hosts read afresh) took inside
    each ``select_destinations``."""

    last_states_seconds = 0.0

    def up_host_states(self):
        t0 = time.perf_counter()
        try:
            return super().up_host_states()
        finally:
            self.last_states_seconds = time.perf_counter() - t0

    def up_host_states_of(self, **kwargs):
        t0 = time.perf_counter()
        try:
            return super().up_host_states_of(**kwargs)
        finally:
            self.last_states_seconds = time.perf_counter() - t0


class _Heartbeats:
    """The compute hosts' heartbeats, at their real rate on the clock of
    the requests: ``hosts / report_interval`` per second of it, hosts in
    turn (a random order). Written by a process of their own, as the
    compute services write them: in the measuring process their ORM
    objects would set off garbage collections inside the timed
    decisions."""

    def __init__(self, url: str, hosts: list[str],
                 rng: random.Random) -> None:
        self.hosts = list(hosts)
        rng.shuffle(self.hosts)
        self.rate = len(hosts) / CONF.compute.report_interval
        self.sent = 0
        self.clock = 0.0
        self._pipe, child = multiprocessing.get_context('fork').Pipe()
        self._process = multiprocessing.get_context('fork').Process(
            target=_send_heartbeats, args=(url, child), daemon=True)
        self._process.start()

    def advance(self, seconds: float) -> None:
        """Send the heartbeats due after ``seconds`` more of the clock,
        and wait until they are committed."""
        self.clock += seconds
        due = []
        while self.sent < int(self.rate * self.clock):
            due.append(self.hosts[self.sent % len(self.hosts)])
            self.sent += 1
        if due:
            self._pipe.send(due)
            self._pipe.recv()

    def stop(self) -> None:
        self._pipe.send(None)
        self._process.join(30)


def _send_heartbeats(url: str, pipe) -> None:
    db = db_api.Database(url)
    try:
        while (hosts := pipe.recv()) is not None:
            for host in hosts:
                db.compute_node_report(host, _capacity(host))
            pipe.send(len(hosts))
    finally:
        db.dispose()


def _decide(scheduler, conductor, db, instance_uuid: str) -> tuple:
    """One decision as the conductor makes it; (host, t0, t1, t2)."""
    instance = db.instance_get(instance_uuid)
    t0 = time.perf_counter()
    candidates = scheduler.select_destinations(instance, {})
    t1 = time.perf_counter()
    host = conductor.placement.claim_first_fit(instance, candidates)
    t2 = time.perf_counter()
    if host is None:
        raise RuntimeError('no host for %s' % instance_uuid)
    return instance, host, t0, t1, t2


def _measure(db, instances: list[str], heartbeats: _Heartbeats) -> dict:
    scheduler = _TimedScheduler(db)
    conductor = conductor_manager.ConductorManager(db, None, scheduler)
    total, states, rest, claim, in_memory = [], [], [], [], []
    cached = scheduler.up_host_states()
    heartbeats.advance(scheduler.host_states.MARGIN.total_seconds())
    sent = heartbeats.sent
    for instance_uuid in instances:
        instance, host, t0, t1, t2 = _decide(scheduler, conductor, db,
                                             instance_uuid)
        heartbeats.advance(t2 - t0)
        total.append(t2 - t0)
        states.append(scheduler.last_states_seconds)
        rest.append(t1 - t0 - scheduler.last_states_seconds)
        claim.append(t2 - t1)
        db.release_claim(instance_uuid)
        spec = scheduler.request_spec(instance, {})
        t3 = time.perf_counter()
        host_state.filter_and_weigh(cached, spec, scheduler.filters,
                                    scheduler.weighers)
        in_memory.append(time.perf_counter() - t3)
    result = {
        'requests': len(instances),
        'decision_ms': common.summary([t * 1000 for t in total]),
        'host_states_ms': common.summary([t * 1000 for t in states]),
        'filter_weigh_ms': common.summary([t * 1000 for t in rest]),
        'claim_ms': common.summary([t * 1000 for t in claim]),
        'filter_weigh_in_memory_ms': common.summary(
            [t * 1000 for t in in_memory]),
        'claim_retries': conductor.stats.get('claim_retries', 0),
        'heartbeats_during': heartbeats.sent - sent,
        # (None: a HostStateCache that does not count them)
        'rows_reread': getattr(scheduler.host_states, 'rows_reread', None),
    }
    for key in list(result):
        if key.endswith('_ms'):
            result[key].pop('values', None)
    return result


def _profile(db, instances: list[str], path: str) -> dict | None:
    """pyinstrument over the decisions alone (select + claim)."""
    try:
        import pyinstrument
    except ImportError:
        return None
    scheduler = scheduler_mod.Scheduler(db)
    conductor = conductor_manager.ConductorManager(db, None, scheduler)
    profiler = pyinstrument.Profiler(interval=0.0005)
    for instance_uuid in instances:
        instance = db.instance_get(instance_uuid)
        profiler.start()
        candidates = scheduler.select_destinations(instance, {})
        conductor.placement.claim_first_fit(instance, candidates)
        profiler.stop()
        db.release_claim(instance_uuid)
    with open(path, 'w') as f:
        f.write(profiler.output_text(unicode=False, color=False,
                                     show_all=False))
    return {'profile': os.path.basename(path),
            'profile_top': _top_functions(profiler),
            'profile_by_area': _by_area(profiler)}


def _self_times(profiler) -> dict[tuple[str, str, int], float]:
    """Self time per (file, function, line) over the profiled session."""
    totals: dict[tuple[str, str, int], float] = {}
    root = profiler.last_session.root_frame()

    def walk(frame, parent):
        if frame.is_synthetic_leaf:  # "[self]": time of the parent itself
            owner = parent
        elif not frame.children:
            owner = frame
        else:
            owner = None
        if owner is not None:
            key = (owner.file_path or '?', owner.function or '?',
                   owner.line_no or 0)
            totals[key] = totals.get(key, 0.0) + frame.time
        for child in frame.children:
            walk(child, frame)

    if root is not None:
        walk(root, None)
    return totals


def _top_functions(profiler, limit: int = 12) -> list[dict]:
    totals = _self_times(profiler)
    duration = sum(totals.values()) or 1.0
    top = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:limit]
    return [{'function': '%s (%s:%d)' % (fn, _short(path), line),
             'self_pct': round(100.0 * t / duration, 1)}
            for (path, fn, line), t in top]


_AREAS = (('sqlalchemy/orm', 'SQLAlchemy ORM (objects, identity map, '
           'relationship loading)'),
          ('sqlalchemy', 'SQLAlchemy Core/engine'),
          ('sqlite3', 'sqlite3 driver'), ('psycopg2', 'psycopg2 driver'),
          ('lifecycle/db', 'lifecycle/db queries'),
          ('lifecycle/conductor/scheduler', 'Scheduler: HostState building'),
          ('filters/', 'filters/ (filters, weighers, normalise, sort)'),
          ('dataclasses', 'HostState dataclass __init__'),
          ('<string>', 'HostState dataclass __init__'))


def _area(path: str) -> str:
    for needle, name in _AREAS:
        if needle in path:
            return name
    return 'other (%s)' % _short(path)


def _by_area(profiler) -> list[dict]:
    areas: dict[str, float] = {}
    for (path, _fn, _line), t in _self_times(profiler).items():
        name = _area(path)
        if name.startswith('other'):
            name = 'other'
        areas[name] = areas.get(name, 0.0) + t
    duration = sum(areas.values()) or 1.0
    return [{'area': k, 'pct': round(100.0 * v / duration, 1)}
            for k, v in sorted(areas.items(), key=lambda kv: kv[1],
                               reverse=True)]


def _short(path: str) -> str:
    for marker in ('site-packages/', '/work/main/', 'lib/python3'):
        if marker in path:
            return path.split(marker, 1)[1]
    return os.path.basename(path)


def _commit_floor(db, requests: int) -> dict:
    """The smallest write transaction (one UPDATE of one column of one row,
    by primary key, then COMMIT): what any durable claim costs on this
    database and disk at least, whatever the scheduler does."""
    node = models.ComputeNode
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        with db.session() as session:
            session.execute(sa.update(node).where(node.id == 1).values(
                updated_at=models.utcnow()))
        times.append((time.perf_counter() - t0) * 1000)
    floor = common.summary(times)
    floor.pop('values')
    return floor


def _cold_load_ms(db) -> float:
    """The first ``up_host_states`` of a new scheduler: every host read
    (what a conductor pays once after it starts, and on a full refresh)."""
    scheduler = scheduler_mod.Scheduler(db)
    t0 = time.perf_counter()
    scheduler.up_host_states()
    return (time.perf_counter() - t0) * 1000


def _databases(opts, work: str):
    yield 'sqlite', 'sqlite:///%s' % os.path.join(work, 'sched.sqlite'), None
    if opts.postgresql:
        from tests.harness import deployment as it
        server = it.DatabaseServer('postgresql')
        try:
            yield 'postgresql', server.create(), server
        finally:
            server.drop_all()


def run(opts) -> dict:
    work = common.make_work_dir(opts.work_dir, 'sched-')
    profile_dir = opts.profile_dir
    CONF.set_override('service_down_time', 365 * 86400, group='compute')
    section = {'group_size': GROUP_SIZE, 'host_counts': opts.sched_hosts,
               'targets_ms_p50': {str(k): v for k, v in TARGETS_MS.items()},
               'results': []}
    try:
        for backend, url, _server in _databases(opts, work):
            for hosts in opts.sched_hosts:
                requests = opts.sched_requests.get(hosts, 50)
                if backend == 'sqlite':
                    path = os.path.join(work, 'sched-%d.sqlite' % hosts)
                    url = 'sqlite:///%s' % path
                elif hosts != opts.sched_hosts[0]:
                    url = _server.create()
                db = db_api.Database(url)
                heartbeats = None
                try:
                    migration.sync(db)
                    t0 = time.monotonic()
                    instances = _populate(db, hosts, requests,
                                          random.Random(hosts))
                    populate = time.monotonic() - t0
                    heartbeats = _Heartbeats(
                        url, [r.host for r in db.compute_node_states()],
                        random.Random(hosts))
                    for kind in ('unshelve', 'boot'):
                        measured = _measure(db, instances[kind], heartbeats)
                        measured.update(database=backend, hosts=hosts,
                                        request=kind,
                                        populate_seconds=populate)
                        measured['commit_floor_ms'] = _commit_floor(
                            db, len(instances[kind]))
                        measured['cold_host_states_ms'] = _cold_load_ms(db)
                        limit = TARGETS_MS.get(hosts)
                        if (profile_dir and limit is not None and
                                measured['decision_ms']['median'] > limit):
                            # Missed: where does the time go?
                            measured.update(_profile(
                                db, instances[kind][:10],
                                os.path.join(profile_dir,
                                             'scheduler-%s-%s-%d.txt' % (
                                                 backend, kind, hosts)))
                                or {})
                        section['results'].append(measured)
                        common.log(
                            '  %s %5d hosts %-8s p50 %.2f ms p99 %.2f ms '
                            '(host states %.2f, filter+weigh %.2f, claim '
                            '%.2f, commit floor %.2f; in memory %.2f; '
                            'cold host states %.1f; %d heartbeats, %s rows '
                            're-read)',
                            backend, hosts, kind,
                            measured['decision_ms']['median'],
                            measured['decision_ms']['p99'],
                            measured['host_states_ms']['median'],
                            measured['filter_weigh_ms']['median'],
                            measured['claim_ms']['median'],
                            measured['commit_floor_ms']['median'],
                            measured['filter_weigh_in_memory_ms']['median'],
                            measured['cold_host_states_ms'],
                            measured['heartbeats_during'],
                            measured['rows_reread'])
                finally:
                    if heartbeats is not None:
                        heartbeats.stop()
                    db.dispose()
    finally:
        CONF.clear_override('service_down_time', group='compute')
        shutil.rmtree(work, ignore_errors=True)
    return section
