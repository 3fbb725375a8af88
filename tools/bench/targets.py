"""The benchmark's targets, judged from what one run measured.

Each target gets a verdict: met, missed, reported (no limit), failed or
not measured in this run; the measure beside the floor its section
measured in the same run (a time only holds beside its baseline); the
first frames of the profile its section saved; the 1-minute load average
around its section. The report (``report.py``) and the README's figures
(``figures.py``) are written from these verdicts only, so a fresh run
explains itself; interpretation written by hand belongs in
``doc/source/benchmarks.rst``.
"""

from tools.bench import common

# One unshelve against a bare define + create of the same domain XML
# (issue 14; 1.5x before it).
UNSHELVE_OVER_FLOOR_MAX = 1.2
LARGEST_OVER_SMALLEST_MAX = 1.2
FULL_OVER_PARTIAL_AT_4GIB_MIN = 50.0
# Disk data moved: no transfer at all, and less written by the service
# process than this (what it writes anyway: SQLite commits, log lines).
NO_DISK_DATA_BYTES = common.MiB
MASS_RETRIES_PCT_MAX = 1.0
# Mass unshelve runs: (which run, what it is, p99 limit in seconds); a
# multi-process run of LARGE_BURST instances or more is the large one.
MASS_RUNS = (
    ('aio', '200 unshelves at once, 20 hosts, 2 groups, all-in-one', 2.0),
    ('multiprocess', '200 unshelves at once, 20 hosts, 2 groups, '
     'multi-process', 2.0),
    ('multiprocess_1000', '1,000 unshelves at once, 100 hosts, 5 groups, '
     'multi-process', 5.0),
)
LARGE_BURST = 1000
# Scheduler decision p50 in ms per database and host count, every request
# kind; the rows below are the ones the targets name, reported as not
# measured when a run lacks them.
SCHEDULER_P50_MS = {'sqlite': {1000: 3.0, 10000: 30.0},
                    'postgresql': {1000: 10.0, 10000: 30.0}}
SCHEDULER_NAMED = (('sqlite', 1000, 'unshelve'), ('sqlite', 10000, 'boot'),
                   ('postgresql', 1000, 'unshelve'),
                   ('postgresql', 10000, 'boot'))
FRAMES_SHOWN = 3
_ENTRY_POINTS = ('(lifecycle/cmd/', '(lifecycle/deploy.py)')

NOT_MEASURED = 'not measured in this run'


# -- formatting ---------------------------------------------------------------

def num(value, digits=3) -> str:
    """A number with about three significant digits; '-' for None."""
    if value is None:
        return '-'
    if abs(value) >= 100:
        return '%.0f' % value
    if abs(value) >= 10:
        return '%.1f' % value
    return '%.*f' % (digits, value)


def size(value) -> str:
    if value is None:
        return '-'
    for unit, step in (('GiB', common.GiB), ('MiB', common.MiB),
                       ('KiB', 1024)):
        if abs(value) >= step:
            return '%.1f %s' % (value / step, unit)
    return '%d B' % value


def load_text(load: list | None, cpus: int | None) -> str:
    if not load:
        return 'not recorded'
    text = '%.1f → %.1f' % (load[0], load[1])
    if cpus and load[0] > cpus:
        # Before the section started: other jobs of the machine, not it.
        text += ' (busy before it started: more than its %d CPUs)' % cpus
    return text


# -- verdicts -----------------------------------------------------------------

def _verdict(results: dict, section: str, target: str, **kw) -> dict:
    v = {'target': target, 'section': section, 'value': None,
         'limit': None, 'met': None, 'measured': '', 'floor': None,
         'ratio_to_floor': None, 'detail': [], 'profile': [],
         'load': results.get('load_average', {}).get(section)}
    v.update(kw)
    if 'status' not in v:
        v['status'] = ('reported' if v['met'] is None else
                       'met' if v['met'] else 'missed')
    return v


def _absent(results: dict, section: str, target: str, what: str = '') -> dict:
    error = results.get('errors', {}).get(section)
    if error and section not in results.get('sections', {}):
        return _verdict(results, section, target, status='failed',
                        measured='section failed: %s' % error)
    reason = what or ('the %s section did not run' % section)
    return _verdict(results, section, target, status='not measured',
                    measured='%s (%s)' % (NOT_MEASURED, reason))


def _check(value, limit, at_most=True):
    if value is None:
        return None
    return value <= limit if at_most else value >= limit


def _median(size_row: dict, kind: str, op: str = 'unshelve'):
    try:
        return size_row['summary'][kind][op]['median']
    except (KeyError, TypeError):
        return None


def client_median(size_row: dict, kind: str, op: str = 'unshelve'):
    """Median of the operation as the polling client saw it; None for
    results measured before the client's view was."""
    try:
        return size_row['summary'][kind][op]['client']['median']
    except (KeyError, TypeError):
        return None


def _latency(results: dict) -> list[dict]:
    lat = results['sections'].get('latency')
    name = ('one unshelve ÷ bare define+create of the same domain XML '
            '≤ %g×' % UNSHELVE_OVER_FLOOR_MAX)
    if not lat or not lat.get('sizes'):
        return [dict(_absent(results, 'latency', name),
                     id='unshelve_over_floor')]
    out = []
    where = 'libvirt %s, %s' % (lat.get('libvirt_uri'),
                                results['machine'].get('acceleration'))
    for s in lat['sizes']:
        floor = _median(s, 'floor')
        n_floor = s['summary']['floor']['unshelve'].get('n')
        for kind, label in (('partial_same_host', 'same host'),
                            ('partial_other_host', 'other host')):
            committed = _median(s, kind)
            seen = client_median(s, kind)
            if seen is None:
                value = common.ratio(committed, floor)
                end = ('the end of an unshelve is the commit of its final '
                       'state, not what a client polling the API sees')
                floor_text = 'unshelve %s s' % num(committed)
            else:
                value = common.ratio(seen, floor)
                end = ('the end of an unshelve is the first GET that shows '
                       'it ACTIVE, polling every %s s; its final commit '
                       'came at %s s (%s× the floor)' % (
                           num(s.get('client_poll_seconds'), 2),
                           num(committed),
                           num(common.ratio(committed, floor), 2)))
                floor_text = 'unshelve %s s as the client saw it' % num(seen)
            out.append(_verdict(
                results, 'latency', '%s (%s of disk data, %s)' % (
                    name, size(s['size_bytes']), label),
                value=value, limit=UNSHELVE_OVER_FLOOR_MAX,
                met=_check(value, UNSHELVE_OVER_FLOOR_MAX),
                id='unshelve_over_floor/%d/%s' % (s['size_bytes'], kind),
                measured='%s×' % num(value, 2), ratio_to_floor=value,
                floor='%s, floor %s s (medians, n=%s)' % (
                    floor_text, num(floor), n_floor),
                detail=['%s; %s' % (where, end)]))
    first, last = lat['sizes'][0], lat['sizes'][-1]
    if len(lat['sizes']) > 1:
        value = common.ratio(_median(last, 'partial_same_host'),
                             _median(first, 'partial_same_host'))
        floor = common.ratio(_median(last, 'floor'), _median(first, 'floor'))
        out.append(_verdict(
            results, 'latency', 'partial unshelve flat in disk size: %s / %s '
            '≤ %g×' % (size(last['size_bytes']), size(first['size_bytes']),
                       LARGEST_OVER_SMALLEST_MAX),
            id='flat',
            value=value, limit=LARGEST_OVER_SMALLEST_MAX,
            met=_check(value, LARGEST_OVER_SMALLEST_MAX),
            measured='%s×' % num(value, 2),
            floor='the floor itself: %s×' % num(floor, 2)))
    at4 = [s for s in lat['sizes'] if s['size_bytes'] == 4 * common.GiB]
    name = ('partial unshelve ≥ %g× faster than full offload at 4 GiB' %
            FULL_OVER_PARTIAL_AT_4GIB_MIN)
    if at4:
        s = at4[0]
        value = common.ratio(_median(s, 'full'),
                             _median(s, 'partial_same_host'))
        out.append(_verdict(
            results, 'latency', name, value=value,
            id='full_over_partial_4gib',
            limit=FULL_OVER_PARTIAL_AT_4GIB_MIN,
            met=_check(value, FULL_OVER_PARTIAL_AT_4GIB_MIN, at_most=False),
            measured='%s×' % num(value, 1),
            floor='full %s s (n=%s of %s requested), partial %s s' % (
                num(_median(s, 'full')),
                s['summary']['full']['unshelve'].get('n'),
                lat.get('full_runs_requested', '?'),
                num(_median(s, 'partial_same_host')))))
    else:
        out.append(dict(_absent(results, 'latency', name, 'no 4 GiB size'),
                        id='full_over_partial_4gib'))
    for s in lat['sizes']:
        moved = [r[op] for kind in ('partial_same_host', 'partial_other_host')
                 for r in s.get(kind, []) for op in ('unshelve', 'shelve')]
        transfer = sum(m['uploaded_bytes'] + m['downloaded_bytes']
                       for m in moved)
        written = max((m['io_written_bytes'] for m in moved), default=0)
        out.append(_verdict(
            results, 'latency', '0 bytes of disk data moved by partial '
            'offload (%s)' % size(s['size_bytes']),
            id='no_disk_data/%d' % s['size_bytes'],
            value=transfer, limit=0,
            met=bool(moved) and transfer == 0 and
            written < NO_DISK_DATA_BYTES,
            measured='%s transferred, ≤ %s written per operation' % (
                size(transfer), size(written))))
    return out


def _profile_lines(profile: dict | None) -> list[str]:
    """The first frames of each profiled process: where its samples went
    (inclusive, the service's own frames) and what they were doing
    (self)."""
    lines = []
    for proc, prof in ((profile or {}).get('processes') or {}).items():
        # The service's own frames, without the process entry points
        # (cmd/, deploy.py) that every sample of a thread passes through.
        inclusive = [p for p in prof.get('inclusive', [])
                     if 'lifecycle/' in p['function'] and not any(
                         e in p['function'] for e in _ENTRY_POINTS)
                     ][:FRAMES_SHOWN]
        leaves = prof.get('self', [])[:FRAMES_SHOWN]
        lines.append('%s process (py-spy, %s samples of a second, profiled '
                     'burst; profiles/%s): through %s; '
                     'leaf frames %s' % (
                         proc, prof.get('samples', '?'), prof.get('file'),
                         ', '.join('%s %s%%' % (p['function'], p['pct'])
                                   for p in inclusive) or '-',
                         ', '.join('%s %s%%' % (p['function'].split(' (')[0],
                                                p['pct']) for p in leaves)
                         or '-'))
    return lines


MASS_SECTIONS = ('mass', 'mass_large')


def _mass_runs(results: dict) -> dict:
    """The mass sections' runs by the target they measure: (section,
    run name, run, the section's results)."""
    found = {}
    for section in MASS_SECTIONS:
        mass = results['sections'].get(section) or {}
        for name, run in mass.get('runs', {}).items():
            instances = run.get('instances', mass.get('instances', 0))
            key = ('aio' if name == 'aio' else 'multiprocess_1000'
                   if instances >= LARGE_BURST else 'multiprocess')
            found.setdefault(key, (section, name, run, mass))
    return found


def _mass(results: dict) -> list[dict]:
    runs = _mass_runs(results)
    out = []
    for key, what, p99_max in MASS_RUNS:
        names = ('%s: per-instance p99 ≤ %g s' % (what, p99_max),
                 '%s: 0 hosts over capacity' % what,
                 '%s: retries ≤ %g %%' % (what, MASS_RETRIES_PCT_MAX))
        ids = ['mass_%s/%s' % (m, key)
               for m in ('p99', 'over_capacity', 'retries')]
        if key not in runs:
            section = 'mass_large' if key == 'multiprocess_1000' else 'mass'
            why = ('no %s run' % key.replace('_', ' ')
                   if results['sections'].get(section) else '')
            out += [dict(_absent(results, section, n, why), id=i)
                    for n, i in zip(names, ids, strict=True)]
            continue
        section, name, run, mass = runs[key]
        floor = mass.get('floor')
        if 'error' in run:
            out += [_verdict(results, section, n, id=i, status='failed',
                             measured='%s run failed: %s' % (
                                 name, run['error'].replace('\n', ' ')[:200]))
                    for n, i in zip(names, ids, strict=True)]
            continue
        scale = '%d instances over %d hosts' % (
            run['instances'], run.get('hosts', mass.get('hosts', 0)))
        p99 = run['latency']['p99']
        v = _verdict(results, section, names[0], id=ids[0], value=p99,
                     limit=p99_max,
                     met=_check(p99, p99_max),
                     measured='%s s (%s)' % (num(p99, 2), scale),
                     profile=_profile_lines(run.get('profile')))
        if floor and floor.get('define_start', {}).get('p99'):
            v['ratio_to_floor'] = common.ratio(p99,
                                               floor['define_start']['p99'])
            v['floor'] = ('%s× the physical floor\'s p99 %s s (the same %s '
                          'define+start calls on the test driver, no '
                          'service; %s s in all)' % (
                              num(v['ratio_to_floor'], 1),
                              num(floor['define_start']['p99'], 3),
                              floor.get('instances', '?'),
                              num(floor.get('total_seconds'), 2)))
        else:
            v['floor'] = 'no floor in this run'
        v['detail'].append(
            'p50 %s s; the API answered the request at p50 %s / p99 %s s; '
            'the burst took %s s' % (
                num(run['latency']['median'], 2),
                num(run['request_answered']['median'], 2),
                num(run['request_answered']['p99'], 2),
                num(run['total_seconds'], 2)))
        cpu = run.get('cpu_ms_per_unshelve')
        if cpu is not None:
            # CPU time, not wall time: threads of one interpreter overlap
            # it where they run C code outside the interpreter lock
            # (SQLite, libvirt), so it is compared with the burst's length,
            # not read as a lower bound of it.
            busy = (run['service_cpu_seconds'] / run['total_seconds']
                    if run.get('total_seconds') else None)
            v['detail'].append(
                'the services spent %s ms of CPU per unshelve (%s s in all '
                'during the burst: on average %s of the machine\'s cores '
                'busy with them)' % (
                    num(cpu, 0), num(run['service_cpu_seconds'], 1),
                    num(busy, 2)))
        writes = run.get('write_transactions_per_unshelve')
        if writes is not None:
            v['detail'].append('%d durable write transactions per unshelve'
                               % writes)
        out.append(v)
        over = run['hosts_over_capacity']
        out.append(_verdict(results, section, names[1], id=ids[1],
                            value=over, limit=0,
                            met=over == 0, measured='%d (%s)' % (over, scale)))
        pct = run['claim_retries_pct']
        out.append(_verdict(
            results, section, names[2], id=ids[2], value=pct,
            limit=MASS_RETRIES_PCT_MAX, met=_check(pct, MASS_RETRIES_PCT_MAX),
            measured='%s %% (%d retries)' % (num(pct, 2),
                                             run['claim_retries'])))
    return out


def _writes(results: dict, writes: dict | None) -> list[dict]:
    name = ('durable write transactions per unshelve: reported, as few as '
            'the data-safety rules allow')
    mass = results['sections'].get('mass') or {}
    measured = ['%d in the %s run' % (r['write_transactions_per_unshelve'],
                                      n)
                for n, r in mass.get('runs', {}).items()
                if r.get('write_transactions_per_unshelve') is not None]
    row = next((r for r in (writes or {}).get('rows', [])
                if r['operation'] == 'unshelve'), None)
    v = _verdict(results, 'mass' if measured else 'writes', name,
                 id='writes_per_unshelve')
    if row:
        project = row['counts'].get('project', 0)
        measured.append('%d by tools.bench.writes at %s (commit %s)' % (
            row['total'], writes.get('generated_at', '?'),
            writes.get('commit', '?')))
        v['value'] = row['total']
        v['ratio_to_floor'] = common.ratio(row['total'], project)
        v['floor'] = ('%s× the %d of the project\'s own tables (what the '
                      'data-safety rules require); %d are the flow store\'s'
                      % (num(v['ratio_to_floor'], 1), project,
                         row['counts'].get('flow store', 0)))
    if not measured:
        return [dict(_absent(results, 'writes', name, 'no count in this '
                             'run, no writes.json beside results.json'),
                     id='writes_per_unshelve')]
    v['measured'] = '; '.join(measured)
    if v['floor'] is None:
        v['floor'] = 'no count by table in this run'
    return [v]


def _scheduler(results: dict) -> list[dict]:
    sched = results['sections'].get('scheduler')
    rows = {(r['database'], r['hosts'], r['request']): r
            for r in (sched or {}).get('results', [])}
    keys = sorted(set(SCHEDULER_NAMED) | {
        k for k in rows if k[1] in SCHEDULER_P50_MS.get(k[0], {})},
        key=lambda k: (k[0] != 'sqlite', k[1], k[2] != 'unshelve'))
    out = []
    for db, hosts, request in keys:
        limit = SCHEDULER_P50_MS[db][hosts]
        name = 'scheduler decision p50 ≤ %g ms at %s hosts, %s, %s' % (
            limit, f'{hosts:,}', request, db)
        ident = 'scheduler/%s/%d/%s' % (db, hosts, request)
        r = rows.get((db, hosts, request))
        if r is None:
            measured = sorted({k[1] for k in rows if k[0] == db})
            why = ''
            if sched:
                why = ('this run measured %s with %s hosts' % (
                    db, ', '.join(str(h) for h in measured)) if measured
                    else 'no %s rows' % db)
            out.append(dict(_absent(results, 'scheduler', name, why),
                            id=ident))
            continue
        p50 = r['decision_ms']['median']
        commit = (r.get('commit_floor_ms') or {}).get('median')
        memory = r['filter_weigh_in_memory_ms']['median']
        v = _verdict(results, 'scheduler', name, id=ident, value=p50,
                     limit=limit,
                     met=_check(p50, limit), measured='%s ms' % num(p50, 2),
                     ratio_to_floor=common.ratio(p50, commit))
        v['floor'] = ('%s× the commit floor (%s ms); filter+weigh in memory '
                      '%s ms' % (num(v['ratio_to_floor'], 1), num(commit, 2),
                                 num(memory, 2)))
        v['detail'].append(
            'host states %s + filter+weigh %s + claim %s ms (medians; p99 of '
            'the decision %s ms, n=%d)' % (
                num(r['host_states_ms']['median'], 2),
                num(r['filter_weigh_ms']['median'], 2),
                num(r['claim_ms']['median'], 2),
                num(r['decision_ms']['p99'], 2), r['decision_ms']['n']))
        if r.get('profile_by_area'):
            v['profile'].append('self time by area (profiles/%s): %s' % (
                r.get('profile'), ', '.join(
                    '%s %s%%' % (a['area'], a['pct'])
                    for a in r['profile_by_area'][:FRAMES_SHOWN])))
        if r.get('profile_top'):
            v['profile'].append('leaf frames: %s' % ', '.join(
                '%s %s%%' % (p['function'], p['self_pct'])
                for p in r['profile_top'][:FRAMES_SHOWN]))
        out.append(v)
    return out


def judge(results: dict, writes: dict | None = None) -> list[dict]:
    """Every target's verdict, in the order of the report's table.

    ``writes``: the JSON of ``tools.bench.writes`` (``writes.json``), or
    None.
    """
    return (_latency(results) + _mass(results) + _writes(results, writes) +
            _scheduler(results))


def counts(verdicts: list[dict]) -> dict:
    out: dict = {}
    for v in verdicts:
        out[v['status']] = out.get(v['status'], 0) + 1
    return out
