"""Comparison 2: mass unshelve.

``instances`` instances are booted over ``hosts`` compute hosts in two
storage groups (libvirt test driver), all shelved (partial offload), then
all unshelved at once: one thread per instance sends its ``unshelve``
request at the same moment (a barrier). A poller reads ``GET
/servers/detail`` back to back and records, per instance, when it is first
seen ACTIVE with no task; the per-instance latency is that time minus the
moment its request was sent (so it includes the poll period, reported as
the resolution).

Two deployments:

* **one process**: the all-in-one (``inproc://`` transport, SQLite file);
  scheduling retries and faults come from ``ConductorManager.stats``;
* **multi-process**: ``lifecycle-api``, ``lifecycle-conductor`` and one
  ``lifecycle-compute`` per host as separate processes over RabbitMQ and a
  fresh PostgreSQL database, started by ``tests/harness/deployment.py``'s
  ``Deployment`` (unique ``rpc_topic_prefix``, own database, dropped at the
  end); retries are counted from the conductor's log (``Retrying instance``
  debug lines, one per failed claim), the only process run with debug
  logging.

Over capacity is checked twice: the hosts' own counters (``GET
/os-hypervisors/detail``: used <= total for RAM and vCPUs) and, from the
instance list, the flavor RAM of the ACTIVE instances on each host against
its memory.
"""

import collections
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid as uuid_mod

from tools.bench import aio as bench_aio
from tools.bench import common
from tools.bench import profiling

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
P99_TARGET = 2.0
# The burst's completion is polled this often; the latencies come from the
# services' log lines, so polling faster would only add load.
POLL_INTERVAL = 1.0

FLAVOR = {'id': 'bench-mass', 'name': 'bench.mass', 'ram': 512, 'vcpus': 1,
          'disk': 1}
SLOTS_PER_HOST = 12
WAVE = 20
# Connection pools of the separate services (``[database]`` options):
# 20 computes x 3 + 2 x 8 = 76 connections at most, under PostgreSQL's
# default max_connections = 100.
POOLS = {'compute': {'max_pool_size': 1, 'max_overflow': 2},
         'api': {'max_pool_size': 4, 'max_overflow': 4},
         'conductor': {'max_pool_size': 4, 'max_overflow': 4}}
# The large burst: 100 computes x 1 + 2 x 8 = 116 connections, over
# PostgreSQL's default 100 and under MariaDB's default max_connections
# (151), so it runs on MariaDB; a compute waits for its one connection
# rather than opening more.
# Computes report every 10 s (the option's default) instead of the
# harness's 2 s: 100 heartbeats every 2 s would be load of their own.
LARGE = {'instances': 1000, 'hosts': 100, 'groups': 5,
         'database': 'mysql', 'report_interval': 10}
LARGE_POOLS = dict(POOLS, compute={'max_pool_size': 1, 'max_overflow': 0})
# Computes started (and waited ready) this many at a time: 100 interpreters
# starting at once on two cores would each take minutes.
START_WAVE = 10


def host_map(hosts: int, groups: int = 2) -> dict[str, str]:
    """``hosts`` hosts shared out over ``groups`` storage groups (group-a,
    group-b, ...; the first groups take the remainder)."""
    letters = 'abcdefghijklmnopqrstuvwxyz'[:groups]
    return {'host-%s%02d' % (g, i): 'group-%s' % g
            for n, g in enumerate(letters)
            for i in range(1, hosts // groups + (n < hosts % groups) + 1)}


def _parallel(fn, items, workers=32):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def _wait_all(client, ids, done, timeout, check=None):
    deadline = time.monotonic() + timeout
    while True:
        if check:
            check()
        servers = {s['id']: s for s in client.servers_detail()
                   if s['id'] in ids}
        if len(servers) == len(ids) and all(
                s['OS-EXT-STS:task_state'] is None and done(s)
                for s in servers.values()):
            return servers
        failed = [s for s in servers.values()
                  if s['OS-EXT-STS:task_state'] is None and not done(s)
                  and (s.get('fault') or s['status'] == 'ERROR')]
        if failed:
            raise RuntimeError('%d instance(s) failed, e.g. %s: %s' % (
                len(failed), failed[0]['id'],
                (failed[0].get('fault') or {}).get('message')))
        if time.monotonic() > deadline:
            raise RuntimeError('timed out: %s' % collections.Counter(
                (s['status'], s['OS-EXT-STS:task_state'])
                for s in servers.values()))
        time.sleep(0.25)


def _shelve_all(client, ids, timeout, check):
    for first in range(0, len(ids), WAVE):
        wave = ids[first:first + WAVE]
        _parallel(lambda sid: client.action(sid, {'shelve': None}), wave)
        _wait_all(client, set(wave),
                  lambda s: s['status'] == 'SHELVED_OFFLOADED', timeout,
                  check)


def _burst(url: str, ids: list[str], timeout: float, work: str) -> dict:
    """The unshelve of every instance at once, from a separate process."""
    ids_file = os.path.join(work, 'ids.json')
    out_file = os.path.join(work, 'burst.json')
    with open(ids_file, 'w') as f:
        json.dump(ids, f)
    subprocess.run([sys.executable, '-m', 'tools.bench.loadgen', url,
                    ids_file, out_file, str(timeout), str(POLL_INTERVAL)],
                   check=True, cwd=REPO)
    with open(out_file) as f:
        return json.load(f)


_UNSHELVED = re.compile(
    r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) .*Instance '
    r'([0-9a-f-]{36}) unshelved on (\S+)')


def _unshelved_at(log_files: list[str], since: float) -> dict[str, float]:
    """Wall-clock time of each instance's last "unshelved on" log line
    (written right after the commit that makes it ACTIVE) after
    ``since``."""
    found: dict[str, float] = {}
    for path in log_files:
        with open(path, errors='replace') as f:
            for line in f:
                m = _UNSHELVED.match(line)
                if not m:
                    continue
                when = time.mktime(time.strptime(
                    m.group(1), '%Y-%m-%d %H:%M:%S')) + int(m.group(2)) / 1e3
                if when >= since - 1:
                    found[m.group(3)] = when
    return found


def scenario(client, image_id: str, instances: int, timeout: float,
             retries_counter, work: str, log_files, check=None,
             profile_pids: dict | None = None,
             profile_dir: str | None = None, label: str = '',
             cpu_pids: list[int] | None = None) -> dict:
    """Boot, shelve, then unshelve everything at once; the measurements.

    ``cpu_pids``: the service processes whose CPU the burst is charged.
    ``retries_counter()`` returns a dict with at least ``claim_retries``
    (and whatever else the deployment can count) at that moment. When the
    p99 target is missed and ``profile_pids`` is given, everything is
    shelved again and a second burst runs under py-spy (the measured burst
    never runs under a profiler).
    """
    client.create_flavor(FLAVOR['id'], FLAVOR['name'], FLAVOR['ram'],
                         FLAVOR['vcpus'], FLAVOR['disk'])
    # Set-up (not measured) in waves of WAVE instances, each finished
    # before the next starts, so that it never has more requests in flight
    # than the database server accepts connections for.
    started = time.monotonic()
    ids, servers = [], {}
    for first in range(0, instances, WAVE):
        wave = _parallel(lambda i: client.boot('mass-%03d' % i, image_id,
                                               FLAVOR['id']),
                         range(first, min(first + WAVE, instances)))
        servers.update(_wait_all(client, set(wave),
                                 lambda s: s['status'] == 'ACTIVE',
                                 timeout, check))
        ids += wave
    boot_seconds = time.monotonic() - started
    original = {sid: s['OS-EXT-SRV-ATTR:host'] for sid, s in servers.items()}
    started = time.monotonic()
    _shelve_all(client, ids, timeout, check)
    shelve_seconds = time.monotonic() - started
    common.log('  %d booted in %.1f s, shelved in %.1f s', instances,
               boot_seconds, shelve_seconds)

    before = retries_counter()
    cpu_before = _process_cpu_seconds(cpu_pids or [])
    burst = _burst(client.url, ids, timeout, work)
    cpu_seconds = _process_cpu_seconds(cpu_pids or []) - cpu_before
    after = retries_counter()
    if check:
        check()
    seen, sent, failed = burst['seen'], burst['sent'], burst['failed']
    sent_wall = burst['sent_wall']
    logged = _unshelved_at(log_files(), min(sent_wall.values()))
    latencies = [logged[sid] - sent_wall[sid] for sid in seen
                 if sid in logged]
    total = (max(logged[sid] for sid in seen if sid in logged) -
             min(sent_wall.values())) if seen else None

    detail = {s['id']: s for s in client.servers_detail()}
    hypervisors = client.hypervisors()
    over = []
    ram_on = collections.Counter()
    for s in detail.values():
        if s['status'] == 'ACTIVE':
            ram_on[s['OS-EXT-SRV-ATTR:host']] += FLAVOR['ram']
    for h in hypervisors:
        name = h['hypervisor_hostname']
        if (h['memory_mb_used'] > h['memory_mb'] or
                h['vcpus_used'] > h['vcpus'] or
                ram_on[name] > h['memory_mb']):
            over.append(name)
    same_host = sum(1 for sid in seen
                    if detail[sid]['OS-EXT-SRV-ATTR:host'] == original[sid])
    same_group = sum(1 for sid in seen if detail[sid][
        'OS-EXT-SRV-ATTR:host'][:6] == original[sid][:6])
    retries = after.get('claim_retries', 0) - before.get('claim_retries', 0)
    deltas = {k: after.get(k, 0) - before.get(k, 0)
              for k in set(after) | set(before)}
    result = {
        'instances': instances,
        'boot_seconds': boot_seconds,
        'shelve_seconds': shelve_seconds,
        'requests_sent_seconds': burst['requests_seconds'],
        'request_answered': common.summary(
            [burst['answered'][k] - sent[k] for k in burst['answered']]),
        'total_seconds': total,
        'unshelved': len(seen),
        'failed': len(failed),
        'failures': sorted(set(failed.values()))[:5],
        'client_errors': burst['errors'],
        'not_finished': len(ids) - len(seen) - len(failed),
        'latency': common.summary(latencies),
        'latency_polled': common.summary(
            [seen[sid] - sent[sid] for sid in seen]),
        'latency_not_logged': len([sid for sid in seen
                                   if sid not in logged]),
        'poll_interval': POLL_INTERVAL,
        'poll_period': common.summary(burst['polls']),
        'claim_retries': retries,
        'claim_retries_pct': 100.0 * retries / len(ids),
        'counters': deltas,
        'hosts_over_capacity': len(over),
        'hosts_over_capacity_names': over,
        'back_on_original_host': same_host,
        # The services' CPU during the burst: with one interpreter lock per
        # process, a burst cannot end before this over the cores used.
        'service_cpu_seconds': cpu_seconds,
        'cpu_ms_per_unshelve': 1000.0 * cpu_seconds / len(ids),
        'in_original_storage_group': same_group,
    }
    result['request_answered'].pop('values')
    result['poll_period'].pop('values')
    result['latency_polled'].pop('values')
    common.log('  unshelve of %d at once: %d done in %.1f s, p50 %.2f s, '
               'p99 %.2f s, %d retries, %d hosts over capacity',
               instances, len(seen), total or -1,
               result['latency']['median'] or -1,
               result['latency']['p99'] or -1, retries, len(over))
    p99 = result['latency']['p99']
    if profile_pids and profile_dir and (p99 is None or
                                         p99 > P99_TARGET):
        result['profile'] = _profile_burst(
            client, ids, timeout, work, check, profile_pids, profile_dir,
            label)
    return result


def _profile_burst(client, ids, timeout, work, check, pids: dict,
                   profile_dir: str, label: str) -> dict:
    """Shelve everything again, then a second burst under py-spy."""
    if profiling.py_spy() is None:
        return {'error': 'py-spy is not installed'}
    active = {s['id'] for s in client.servers_detail()
              if s['status'] == 'ACTIVE'}
    ids = [sid for sid in ids if sid in active]
    _shelve_all(client, ids, timeout, check)
    recordings = {name: profiling.Recording(
        pid, os.path.join(work, 'pyspy-%s.txt' % name))
        for name, pid in pids.items()}
    time.sleep(1)  # py-spy attaches
    try:
        burst = _burst(client.url, ids, timeout, work)
    finally:
        paths = {name: rec.stop() for name, rec in recordings.items()}
    out = {'burst_total_seconds': max(burst['seen'].values(), default=None),
           'processes': {}}
    for name, path in paths.items():
        if path is None:
            continue
        summary = profiling.summarise(path)
        out['processes'][name] = summary
        text = os.path.join(profile_dir, 'mass-%s-%s.txt' % (label, name))
        with open(text, 'w') as f:
            f.write('py-spy, %d samples of the %s process during a '
                    'mass unshelve burst (%s)\n\n' % (summary['samples'],
                                                     name, label))
            f.write('Inclusive (share of samples passing through):\n')
            for row in summary['inclusive']:
                f.write('  %5.1f%%  %s\n' % (row['pct'], row['function']))
            f.write('\nSelf (leaf frames):\n')
            for row in summary['self']:
                f.write('  %5.1f%%  %s\n' % (row['pct'], row['function']))
        summary['file'] = os.path.basename(text)
    return out


def physical_floor(instances: int) -> dict:
    """The burst with nothing around it: ``instances`` define+start calls
    of the domain XML the driver builds, on a fresh connection to
    libvirt's test driver, one thread each, released at once by a barrier
    (as the service's burst is). Per instance: from the release to its
    domain running."""
    import libvirt

    from lifecycle.virt import domain_xml

    conn = libvirt.open('test:///default')
    xmls = [domain_xml.build_domain_xml(domain_xml.DomainSpec(
        uuid=str(uuid_mod.uuid4()), display_name='floor-%03d' % i,
        vcpus=FLAVOR['vcpus'], memory_mb=FLAVOR['ram'],
        disk_path='/var/tmp/floor-%03d.qcow2' % i, disk_format='qcow2',
        host='host-a01', user_id='bench', project_id='bench',
        flavor_name=FLAVOR['name']), 'qemu') for i in range(instances)]
    barrier = threading.Barrier(instances + 1)
    took: list[float] = []
    lock = threading.Lock()

    def start(xml: str) -> None:
        barrier.wait()
        conn.defineXML(xml).create()
        done = time.monotonic()
        with lock:
            took.append(done)

    threads = [threading.Thread(target=start, args=(x,)) for x in xmls]
    try:
        for thread in threads:
            thread.start()
        barrier.wait()
        released = time.monotonic()
        for thread in threads:
            thread.join()
    finally:
        for dom in conn.listAllDomains():
            dom.destroy()
            dom.undefine()
        conn.close()
    result = common.summary([t - released for t in took])
    result.pop('values')
    return {'define_start': result, 'instances': instances,
            'total_seconds': max(took) - released}


def _process_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of processes (and their reaped children), from
    /proc: what the services spent, whatever the machine's load."""
    tick = os.sysconf('SC_CLK_TCK')
    total = 0
    for pid in pids:
        try:
            with open('/proc/%d/stat' % pid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(v) for v in fields[11:15])
    return total / tick


def run_aio(opts) -> dict:
    work = common.make_work_dir(opts.work_dir, 'mass-aio-')
    hosts = host_map(opts.mass_hosts)
    try:
        overrides = bench_aio.base_overrides(
            os.path.join(work, 'state'), 'test:///default',
            ['%s:%s' % hg for hg in hosts.items()],
            vcpus=SLOTS_PER_HOST, memory_mb=SLOTS_PER_HOST * FLAVOR['ram'])
        log_file = os.path.join(opts.log_dir, 'mass-aio.log')
        bench_aio.setup_logging(log_file)
        with bench_aio.running_aio(overrides) as aio:
            client = common.Client(aio.url)
            image_id = client.images()[0]['id']
            result = scenario(client, image_id, opts.mass_instances,
                              opts.op_timeout,
                              lambda: bench_aio.conductor_stats(aio), work,
                              lambda: [log_file],
                              profile_pids={'aio': os.getpid()},
                              profile_dir=opts.profile_dir, label='aio',
                              cpu_pids=[os.getpid()])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.update(deployment='one process (lifecycle-aio: inproc://, SQLite)',
                  hosts=len(hosts), groups=2,
                  host_capacity={'vcpus': SLOTS_PER_HOST,
                                 'memory_mb': SLOTS_PER_HOST * FLAVOR['ram']})
    return result


def _count_in_logs(log_dir: str, needle: str) -> int:
    count = 0
    for name in os.listdir(log_dir):
        if name.endswith('.log'):
            with open(os.path.join(log_dir, name), errors='replace') as f:
                count += sum(1 for line in f if needle in line)
    return count


_DATABASE_NAMES = {'postgresql': 'PostgreSQL', 'mysql': 'MariaDB'}


def _max_connections(url: str) -> int | None:
    import sqlalchemy as sa
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == 'postgresql':
                return int(conn.exec_driver_sql(
                    'SHOW max_connections').scalar())
            return int(conn.exec_driver_sql(
                'SELECT @@max_connections').scalar())
    except Exception:
        return None
    finally:
        engine.dispose()


def _conductor_counts(log_path: str) -> dict:
    counts = collections.Counter()
    try:
        with open(log_path, errors='replace') as f:
            for line in f:
                if 'Retrying instance' in line:
                    counts['claim_retries'] += 1
                elif 'failed, trying the next host' in line:
                    counts['compute_failures'] += 1
                elif 'did not answer the unshelve' in line:
                    counts['timeouts'] += 1
                elif 'No valid host' in line:
                    counts['no_valid_host'] += 1
    except FileNotFoundError:
        pass
    return dict(counts)


def run_multiprocess(opts, instances: int, hosts: dict[str, str],
                     database: str = 'postgresql', pools: dict = POOLS,
                     label: str = 'multiprocess',
                     report_interval: int | None = None) -> dict:
    """``instances`` over ``hosts`` (host -> group), one process per
    service, on RabbitMQ and a fresh database of the ``database`` server
    (a name of ``tests.harness.deployment.DATABASE_SERVERS``)."""
    # Imported here: the integration harness needs pytest, kombu and
    # SQLAlchemy's database drivers, which only this deployment uses.
    from tests.harness import deployment as it

    if not it.rabbit_usable(it.RABBIT_URL):
        raise RuntimeError('RabbitMQ at %s is not usable' % it.RABBIT_URL)

    class Deployment(it.Deployment):
        def spawn(self, name, command, extra=None, env=None, wrapper=None):
            extra = {k: dict(v) for k, v in (extra or {}).items()}
            # Debug logging only where the retries are counted.
            if command != 'conductor':
                extra.setdefault('DEFAULT', {})['debug'] = 'false'
            extra.setdefault('database', {}).update(pools[command])
            if command == 'compute' and report_interval:
                extra.setdefault('compute', {})[
                    'report_interval'] = report_interval
            return super().spawn(name, command, extra, env, wrapper)

    work = common.make_work_dir(opts.work_dir, 'mass-mp-')
    log_dir = common.make_work_dir(work, 'logs-')
    dbs = it.DatabaseServer(database)
    deployment = None
    try:
        url = dbs.create()
        deployment = Deployment(
            root=os.path.join(work, 'root'), log_dir=log_dir,
            database_url=url, transport_url=it.RABBIT_URL,
            libvirt_uri='test:///default', hosts=hosts,
            host_vcpus=SLOTS_PER_HOST,
            host_memory_mb=SLOTS_PER_HOST * FLAVOR['ram'])
        started = time.monotonic()
        deployment.start(wave=START_WAVE)
        start_seconds = time.monotonic() - started
        common.log('  %d processes ready in %.1f s',
                   len(deployment.processes), start_seconds)
        conductor_log = deployment.processes['conductor'].log_path
        client = common.Client(deployment.url)
        pids = {name: deployment.processes[name].popen.pid
                for name in ('api', 'conductor', 'host-a01')}
        result = scenario(client, deployment.image_id, instances,
                          opts.op_timeout,
                          lambda: _conductor_counts(conductor_log), work,
                          lambda: [p.log_path for n, p in
                                   deployment.processes.items()
                                   if n.startswith('host-')],
                          check=deployment.check_alive, profile_pids=pids,
                          profile_dir=opts.profile_dir,
                          label=label,
                          cpu_pids=[p.popen.pid for p in
                                    deployment.processes.values()])
        result['processes'] = len(deployment.processes)
        result['start_seconds'] = start_seconds
        result['database_max_connections'] = _max_connections(url)
        result['database_connections'] = {
            command: dict(pool) for command, pool in pools.items()}
        result['db_connection_refusals_logged'] = (
            _count_in_logs(log_dir, 'too many clients') +
            _count_in_logs(log_dir, 'Too many connections'))
    except Exception:
        # Keep the service logs for the post-mortem (run.py keeps its
        # scratch directory when a section fails).
        shutil.copytree(log_dir, os.path.join(opts.log_dir,
                                              'mass-' + label),
                        dirs_exist_ok=True)
        raise
    finally:
        if deployment is not None:
            deployment.stop()
        dbs.drop_all()
        shutil.rmtree(work, ignore_errors=True)
    result.update(deployment='multi-process (lifecycle-api, '
                  'lifecycle-conductor, %d lifecycle-compute; RabbitMQ, '
                  '%s)' % (len(hosts), _DATABASE_NAMES[database]),
                  hosts=len(hosts), groups=len(set(hosts.values())),
                  host_capacity={'vcpus': SLOTS_PER_HOST,
                                 'memory_mb': SLOTS_PER_HOST * FLAVOR['ram']})
    return result


def run(opts) -> dict:
    section = {'instances': opts.mass_instances, 'hosts': opts.mass_hosts,
               'groups': 2, 'libvirt_uri': 'test:///default', 'runs': {}}
    common.log('mass unshelve: physical floor (%d define+start on the '
               'test driver, no service)', opts.mass_instances)
    section['floor'] = physical_floor(opts.mass_instances)
    common.log('  floor: p99 %.3f s, all in %.3f s',
               section['floor']['define_start']['p99'],
               section['floor']['total_seconds'])
    common.log('mass unshelve: one process')
    section['runs']['aio'] = run_aio(opts)
    if opts.multiprocess:
        common.log('mass unshelve: multi-process (RabbitMQ + PostgreSQL)')
        section['runs']['multiprocess'] = _recorded(
            opts, 'multiprocess', lambda: run_multiprocess(
                opts, opts.mass_instances, host_map(opts.mass_hosts)))
    return section


def _recorded(opts, label: str, measure) -> dict:
    try:
        return measure()
    except Exception as e:  # recorded, the other results still count
        return {'error': str(e)[-2000:],
                'logs': os.path.join(opts.log_dir, 'mass-' + label)}


def run_large(opts) -> dict:
    """The large burst (section ``mass_large``): ``LARGE`` instances over
    its hosts and groups, multi-process only, beside its own physical
    floor."""
    instances, hosts = LARGE['instances'], LARGE['hosts']
    section = {'instances': instances, 'hosts': hosts,
               'groups': LARGE['groups'], 'libvirt_uri': 'test:///default',
               'runs': {}}
    common.log('mass unshelve, large: physical floor (%d define+start)',
               instances)
    section['floor'] = physical_floor(instances)
    common.log('  floor: p99 %.3f s, all in %.3f s',
               section['floor']['define_start']['p99'],
               section['floor']['total_seconds'])
    common.log('mass unshelve, large: %d instances, %d hosts, %d groups, '
               'multi-process (RabbitMQ + %s)', instances, hosts,
               LARGE['groups'], _DATABASE_NAMES[LARGE['database']])
    label = 'multiprocess_%d' % instances
    section['runs'][label] = _recorded(opts, label, lambda: run_multiprocess(
        opts, instances, host_map(hosts, LARGE['groups']),
        database=LARGE['database'], pools=LARGE_POOLS, label=label,
        report_interval=LARGE['report_interval']))
    return section
