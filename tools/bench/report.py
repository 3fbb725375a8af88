"""Headline numbers and the markdown report (results.md)."""

import json
import os

from tools.bench import common
from tools.bench import targets
from tools.bench.targets import load_text

KINDS = (('floor', 'floor: virDomainDefineXML + create'),
         ('floor_virsh', 'floor: virsh define + start (CLI)'),
         ('partial_same_host', 'partial, same host'),
         ('partial_other_host', 'partial, other host of the group'),
         ('full', 'full offload (image service)'))
# Profile areas shown for the scheduler (column: prefix of the area name
# in tools/bench/scheduler.py's _AREAS).
AREAS_SHOWN = {'SQLAlchemy ORM': ('SQLAlchemy ORM',),
               'SQLAlchemy Core': ('SQLAlchemy Core',),
               'lifecycle/db': ('lifecycle/db',),
               'HostState building': ('Scheduler', 'HostState'),
               'filters/': ('filters/',), 'other': ('other',)}
STATUS_SHOWN = {'met': 'met', 'missed': '**missed**', 'reported': 'reported',
                'failed': '**failed**', 'not measured': 'not measured'}


def _median(section: dict, kind: str, op: str) -> float | None:
    try:
        return section['summary'][kind][op]['median']
    except (KeyError, TypeError):
        return None


def read_writes(directory: str) -> dict | None:
    """``writes.json`` of ``tools.bench.writes`` beside results.json, or
    None."""
    path = os.path.join(directory, 'writes.json')
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def headline(results: dict, writes: dict | None = None) -> dict:
    """The figures the README quotes and every target's verdict."""
    out: dict = {}
    lat = results['sections'].get('latency')
    if lat and lat.get('sizes'):
        per_size = []
        for s in lat['sizes']:
            row = {'size_gib': s['size_bytes'] / common.GiB}
            floor = _median(s, 'floor', 'unshelve')
            floor_shelve = _median(s, 'floor', 'shelve')
            for kind in ('partial_same_host', 'partial_other_host'):
                row['%s_over_floor' % kind] = common.ratio(
                    _median(s, kind, 'unshelve'), floor)
                row['%s_client_over_floor' % kind] = common.ratio(
                    targets.client_median(s, kind), floor)
                row['%s_shelve_over_floor' % kind] = common.ratio(
                    _median(s, kind, 'shelve'), floor_shelve)
            for op in ('unshelve', 'shelve'):
                row['full_over_partial_%s' % op] = common.ratio(
                    _median(s, 'full', op),
                    _median(s, 'partial_same_host', op))
            row['full_bytes_moved_median'] = {
                op: (s['summary']['full'][op]['bytes_moved']['median']
                     if s['full'] else None) for op in ('shelve', 'unshelve')}
            per_size.append(row)
        out['latency'] = per_size
    mass_runs = {name: r for section in ('mass', 'mass_large')
                 for name, r in results['sections'].get(
                     section, {}).get('runs', {}).items()}
    if mass_runs:
        out['mass'] = {}
        for name, r in mass_runs.items():
            if 'error' in r:
                out['mass'][name] = {'error': r['error'][-300:]}
                continue
            out['mass'][name] = {
                'total_seconds': r['total_seconds'],
                'p50_seconds': r['latency']['median'],
                'p99_seconds': r['latency']['p99'],
                'retries_pct': r['claim_retries_pct'],
                'hosts_over_capacity': r['hosts_over_capacity'],
                'unshelved': r['unshelved'], 'instances': r['instances'],
            }
    sched = results['sections'].get('scheduler')
    if sched:
        out['scheduler'] = [
            {'database': r['database'], 'hosts': r['hosts'],
             'request': r['request'], 'p50_ms': r['decision_ms']['median'],
             'p99_ms': r['decision_ms']['p99']} for r in sched['results']]
    sto = results['sections'].get('storage')
    if sto and 'full' in sto:
        out['storage'] = {
            'partial_shared_storage_bytes':
                sto['partial']['shared_storage_bytes'],
            'full_image_store_bytes': sto['full']['image_store_bytes'],
            'full_over_partial': sto['ratio_full_to_partial'],
        }
    out['targets'] = targets.judge(results, writes)
    out['target_counts'] = targets.counts(out['targets'])
    return out


# -- markdown -----------------------------------------------------------------

_s = targets.num
_bytes = targets.size


def _spread(summary: dict) -> str:
    if not summary or not summary.get('n'):
        return '-'
    return '%s [%s–%s] (n=%d)' % (_s(summary['median']), _s(summary['min']),
                                   _s(summary['max']), summary['n'])


def _machine_md(m: dict) -> list[str]:
    lv = m.get('libvirt', {})
    disk = m.get('disk', {})
    git = m.get('git', {})
    lines = [
        '| | |', '|---|---|',
        '| CPU | %s, %s cores%s |' % (m.get('cpu_model'), m.get('cpus'),
                                      ' (a virtual machine)' if
                                      m.get('virtualized') else ''),
        '| RAM | %s |' % _bytes(m.get('memory_bytes')),
        '| OS, kernel | %s, %s |' % (m.get('os'), m.get('kernel')),
        '| Acceleration | %s |' % m.get('acceleration'),
        '| libvirt | %s (%s %s, %s) |' % (lv.get('libvirt'),
                                         lv.get('hypervisor'),
                                         lv.get('hypervisor_version'),
                                         lv.get('uri')),
        '| QEMU | %s; %s |' % (m.get('qemu'), m.get('qemu_img')),
        '| Disk | %s on %s (%s), %s free at start |' % (
            disk.get('fstype'), disk.get('device'), disk.get('path'),
            _bytes(disk.get('free_bytes'))),
        '| Python | %s |' % m.get('python'),
        '| Code | commit %s%s |' % (
            (git.get('commit') or '?')[:12],
            ', with uncommitted changes in lifecycle/ or filters/'
            if git.get('service_code_modified') else ''),
    ]
    return lines


def _code(git: dict | None) -> str:
    if not git:
        return ''
    return ', commit %s%s' % (
        (git.get('commit') or '?')[:12],
        ' + uncommitted changes to %s' % ', '.join(
            line.split(maxsplit=1)[-1]
            for line in git.get('modified_files', []))
        if git.get('service_code_modified') else '')


def measured_on(results: dict) -> str:
    """The dates the sections were measured on."""
    days = sorted({run['started_at'][:10] for run in
                   results.get('section_runs', {}).values()
                   if run.get('started_at')} or
                  {results['started_at'][:10]})
    return ', '.join(days)


def _targets_md(results: dict, verdicts: list[dict]) -> list[str]:
    cpus = results['machine'].get('cpus')
    tally = targets.counts(verdicts)
    L = ['## Targets', '',
         '%d targets: %s. Judged by `tools/bench/targets.py` from the '
         'numbers of this report; "against its floor": the baseline its '
         'section measured in the same run; load: the 1-minute load '
         'average before → after its section, on %s CPUs.' % (
             len(verdicts), ', '.join('%d %s' % (tally[k], k)
                                      for k in STATUS_SHOWN if k in tally),
             cpus or '?'), '',
         '| target | measured | | against its floor | load (1 min) |',
         '|---|---|---|---|---|']
    for v in verdicts:
        L.append('| %s | %s | %s | %s | %s |' % (
            v['target'], v['measured'], STATUS_SHOWN[v['status']],
            v['floor'] or '-',
            load_text(v['load'], cpus) if v['status'] not in (
                'not measured', 'failed') else '-'))
    L.append('')
    missed = [v for v in verdicts if v['status'] in ('missed', 'failed')]
    if missed:
        L += ['### Missed targets: what this run measured', '']
        for v in missed:
            far = ''
            if v['value'] is not None and v['limit']:
                far = ' (%s× the limit)' % _s(v['value'] / v['limit'], 2)
            L.append('- **%s**: %s%s.' % (v['target'], v['measured'], far))
            for line in v['detail'] + ([v['floor']] if v['floor'] else []):
                L.append('  - %s.' % line)
            L += ['  - profile: %s.' % line for line in v['profile']] or [
                '  - no profile saved for this target.']
            L.append('  - load average %s.' % load_text(v['load'], cpus))
        L.append('')
    absent = [v for v in verdicts if v['status'] == 'not measured']
    if absent:
        L += ['### Not measured in this run', '']
        L += ['- %s: %s.' % (v['target'], v['measured']) for v in absent]
        L.append('')
    return L


def _mass_floor_md(floor: dict | None) -> str:
    if not floor or not floor.get('define_start', {}).get('n'):
        return ('Physical floor: no floor in this run (the same define + '
                'start calls on the test driver with no service around '
                'them were not measured).')
    d = floor['define_start']
    return ('Physical floor, measured in the same run: the same %s define + '
            'start calls on the test driver with no service around them, '
            '%s s in all; per call p50 %s s, p99 %s s.' % (
                floor.get('instances', d['n']),
                _s(floor.get('total_seconds'), 2), _s(d['median']),
                _s(d['p99'])))


def _mass_md(mass: dict, title: str) -> list[str]:
    """The lines of one mass-unshelve section."""
    L = [title, '',
         '%d instances (1 vCPU, 512 MiB) booted over %d hosts in %d '
         'storage groups (12 such instances fit a host), shelved, then '
         'unshelved at once (one request per instance, released by a '
         'barrier, from a separate client process); libvirt test '
         'driver. Per-instance latency: from its request to the '
         'compute host\'s "unshelved" log line, written right after '
         'the commit that makes it ACTIVE (1 ms resolution); `GET '
         '/servers/detail` is polled once a second only to see the '
         'burst end and count faults (the polled p99 is in '
         'results.json: `latency_polled`). Retries: claims that '
         'failed and went to the next candidate host '
         '(`ConductorManager.stats`, or the conductor\'s "Retrying '
         'instance" log lines in multi-process).' % (
             mass['instances'], mass['hosts'], mass.get('groups', 2)),
         '', _mass_floor_md(mass.get('floor')), '',
         '| deployment | total s | per instance p50 / p99 s | API '
         'answered the request p50 / p99 s | retries | over capacity '
         '| unshelved | on original host | write transactions per '
         'unshelve |', '|---|---|---|---|---|---|---|---|---|']
    for name, r in mass['runs'].items():
        if 'error' in r:
            L.append('| %s | failed: %s | | | | | | | |' % (
                name, r['error'].replace('\n', ' ')[:300]))
            continue
        writes = r.get('write_transactions_per_unshelve')
        L.append('| %s | %s | %s / %s | %s / %s | %d (%s%%) | %d | '
                 '%d/%d | %d | %s |' % (
                     r['deployment'], _s(r['total_seconds'], 2),
                     _s(r['latency']['median'], 2),
                     _s(r['latency']['p99'], 2),
                     _s(r['request_answered']['median'], 2),
                     _s(r['request_answered']['p99'], 2),
                     r['claim_retries'], _s(r['claim_retries_pct'], 2),
                     r['hosts_over_capacity'], r['unshelved'],
                     r['instances'], r['back_on_original_host'],
                     'not counted' if writes is None else writes))
    L.append('')
    for name, r in mass['runs'].items():
        pools = r.get('database_connections')
        if name == 'aio' or 'error' in r:
            continue
        if pools:
            each = ', '.join('%s %d+%d' % (
                command, pool['max_pool_size'], pool['max_overflow'])
                for command, pool in sorted(pools.items()))
        else:  # results of 2026-12-03 and before
            each = 'compute 1+2, api 4+4, conductor 4+4'
        L += ['%s: each service\'s `[database] max_pool_size` + '
              '`max_overflow` (%s) keep the %d processes under the '
              'database server\'s max_connections (%s here; SQLAlchemy\'s '
              'default is 5+10 per process).' % (
                  name, each, r.get('processes', 0),
                  r.get('database_max_connections',
                        r.get('postgresql_max_connections', '?'))), '']
    for name, r in mass['runs'].items():
        for proc, prof in (r.get('profile') or {}).get(
                'processes', {}).items():
            L += ['Profile of the %s process (%s; py-spy, %d samples '
                  'during a second, profiled burst; [text](profiles/%s))'
                  ', share of samples through:' % (
                      proc, name, prof['samples'], prof['file']), '']
            L += ['- %s%% %s' % (p['pct'], p['function'])
                  for p in prof['inclusive'][:6]]
            L += ['- leaf frames: ' + ', '.join(
                '%s %s%%' % (p['function'].split(' (')[0], p['pct'])
                for p in prof['self'][:4])]
            L.append('')
    return L


def write_markdown(results: dict, path: str,
                   writes: dict | None = None) -> None:
    """results.md; ``writes``: see :func:`read_writes`."""
    h = results.get('headline') or headline(results, writes)
    sec = results['sections']
    L = ['# Benchmark results', '',
         'Measured on %s by `%s` (%s mode; the last command, each '
         'section\'s own is under the targets); written from '
         '[results.json](results.json) (the raw numbers) by '
         '`tools/bench/report.py`, which also judges the targets, and '
         'rewritten from it by `python -m tools.bench.run --report-only`; '
         'the plot is [latency.png](latency.png). Times are seconds unless '
         'stated; "median [min–max] (n)". What the numbers mean and what '
         'was found in earlier runs: `doc/source/benchmarks.rst`.' % (
             measured_on(results), results['command'].strip(),
             results['mode']), '']
    if results['mode'] == 'quick':
        L += ['**Quick mode**: small sizes, few runs, local image directory '
              'instead of Glance, no RabbitMQ/PostgreSQL. A smoke run, not '
              'a measurement.', '']
    L += ['## Machine', ''] + _machine_md(results['machine']) + ['']
    if results.get('errors'):
        L += ['## Sections that failed', '']
        L += ['- %s: %s' % kv for kv in sorted(results['errors'].items())]
        L.append('')

    L += _targets_md(results, h['targets'])
    if results.get('section_runs'):
        L += ['Sections run: ' + '; '.join(
            '%s at %s (`%s`%s)' % (
                name, run['started_at'], run['command'].strip(),
                _code(run.get('git')))
            for name, run in sorted(results['section_runs'].items(),
                                    key=lambda kv: kv[1]['started_at'])) +
            '.', '']

    lat = sec.get('latency')
    if lat:
        L += ['## 1. Shelve/unshelve latency vs. root-disk size', '',
              'Real libvirtd + QEMU (`%s`, virt_type %s), one all-in-one; '
              'qcow2 overlay with N GiB of incompressible random data '
              'written; `[DEFAULT] shutdown_timeout = 0` (the OS-less guest '
              'never answers an ACPI shutdown, so shelve powers it off hard, '
              'like the floor\'s destroy). Image service: %s. End of an '
              'operation = commit of its final state; "as the client saw '
              'it": the first `GET /servers/{id}` showing the final status '
              'with no task, polled from the 202 on (the interval is in '
              'the targets\' details). '
              '`[DEFAULT] rpc_response_timeout = %s`: the conductor waits '
              'that long for the compute\'s unshelve and gives up after it; '
              'with the default 60 s a full unshelve of 16 GiB (download + '
              'conversion, several minutes) fails ("did not answer the '
              'unshelve within 60 s").' % (
                  lat.get('libvirt_uri'), lat.get('virt_type'),
                  'real Glance %s' % lat['glance']['glance']
                  if lat.get('glance') else lat.get('image_source'),
                  lat.get('rpc_response_timeout', 60)), '']
        if lat.get('incomplete'):
            L += ['**Incomplete**: the section failed after the sizes shown '
                  '(see "Sections that failed").', '']
        L += ['| disk data | path | unshelve s | shelve s | as the client '
              'saw it (unshelve / shelve, median) | of which in '
              'the libvirt driver (unshelve / shelve) | bytes moved '
              '(unshelve / shelve, median) |', '|---|---|---|---|---|---|---|']
        for s in lat['sizes']:
            for kind, label in KINDS:
                summ = s['summary'][kind]
                if not summ['unshelve']['n']:
                    continue
                L.append('| %s | %s | %s | %s | %s / %s | %s / %s | '
                         '%s / %s |' % (
                    _bytes(s['size_bytes']), label, _spread(summ['unshelve']),
                    _spread(summ['shelve']),
                    _s(targets.client_median(s, kind)),
                    _s(targets.client_median(s, kind, 'shelve')),
                    _s(summ['unshelve'].get('driver_seconds')),
                    _s(summ['shelve'].get('driver_seconds')),
                    _bytes(summ['unshelve']['bytes_moved']['median']),
                    _bytes(summ['shelve']['bytes_moved']['median'])))
        L += ['', '| disk data | partial/floor unshelve (same, other host) | '
              'the same as the client saw it | '
              'partial/floor shelve | full/partial unshelve | full/partial '
              'shelve |', '|---|---|---|---|---|---|']
        for row in h.get('latency', []):
            L.append('| %s GiB | %s×, %s× | %s×, %s× | %s× | %s× | %s× |' % (
                _s(row['size_gib'], 2),
                _s(row['partial_same_host_over_floor'], 2),
                _s(row['partial_other_host_over_floor'], 2),
                _s(row.get('partial_same_host_client_over_floor'), 2),
                _s(row.get('partial_other_host_client_over_floor'), 2),
                _s(row['partial_same_host_shelve_over_floor'], 2),
                _s(row['full_over_partial_unshelve'], 1),
                _s(row['full_over_partial_shelve'], 1)))
        L.append('')
        L += ['Bytes moved = uploaded to + downloaded from the image service '
              '+ `write_bytes` of the service process (and its reaped '
              '`qemu-img` children) during the operation: the disk data '
              'written to instance storage, plus a few KiB of SQLite commits '
              'and log lines, which is all partial offload writes.', '']
        notes = [n for s in lat['sizes'] for n in s.get('notes', [])]
        if notes:
            L += ['Notes:', ''] + ['- %s' % n for n in notes] + ['']

    for section, title in (('mass', '## 2. Mass unshelve'),
                           ('mass_large', '## 2b. Mass unshelve, large')):
        if sec.get(section):
            L += _mass_md(sec[section], title)

    sched = sec.get('scheduler')
    if sched:
        L += ['## 3. Scheduler scale', '',
              'Per request: `Scheduler.select_destinations` + the claim '
              '(conditional UPDATE, `Placement.claim_first_fit`), '
              'as the conductor calls them; storage groups of %d hosts; '
              '"unshelve" requests carry the storage group and shelved host '
              'hints, "boot" requests none (every host is filtered and '
              'weighed). Host states: an unshelve reads its storage '
              "group's hosts afresh (indexed queries, plain rows); a boot "
              "uses the scheduler's `HostStateCache` (every host in memory, "
              'as Nova\'s HostManager keeps them, brought up to date from '
              'the rows written since the previous request). Columns 5-7 '
              'split the decision (medians). For reference: "in memory" = '
              'filters + weighers alone over host states built once; '
              '"commit floor" = a write transaction that changes nothing '
              '(what any durable claim costs at least on this database and '
              'disk); "cold" = the first `up_host_states` of a new '
              'scheduler, which reads every host (once after a start, and '
              'on the periodic full refresh).' % sched['group_size'], '',
              '| database | hosts | request | decision p50 / p99 ms | host '
              'states ms | filter+weigh ms | claim ms | commit floor ms | '
              'in memory ms | cold ms |',
              '|---|---|---|---|---|---|---|---|---|---|']
        for r in sched['results']:
            L.append('| %s | %d | %s | %s / %s | %s | %s | %s | %s | %s | %s'
                     ' |' % (
                         r['database'], r['hosts'], r['request'],
                         _s(r['decision_ms']['median'], 2),
                         _s(r['decision_ms']['p99'], 2),
                         _s(r['host_states_ms']['median'], 2),
                         _s(r['filter_weigh_ms']['median'], 2),
                         _s(r['claim_ms']['median'], 2),
                         _s(r.get('commit_floor_ms', {}).get('median'), 2),
                         _s(r['filter_weigh_in_memory_ms']['median'], 3),
                         _s(r.get('cold_host_states_ms'), 1)))
        L.append('')
        growth = _growth(sched['results'])
        if growth:
            L += ['Growth of the p50 decision time per 10× hosts: ' +
                  '; '.join(growth) + '.', '']
        profiled = [r for r in sched['results'] if r.get('profile_top')]
        if profiled:
            L += ['Where the decision time goes (pyinstrument over 10 '
                  'decisions of each missed case, self time by area -- the '
                  'database drivers are C code, counted in the SQLAlchemy '
                  'Core frames that call them; the call trees are in '
                  '[profiles/](profiles/)):', '',
                  '| database | hosts | request | ' + ' | '.join(
                      AREAS_SHOWN) + ' |',
                  '|---|---|---|' + '---|' * len(AREAS_SHOWN)]
            for r in profiled:
                areas = {a['area']: a['pct']
                         for a in r.get('profile_by_area', [])}
                L.append('| %s | %d | %s | %s |' % (
                    r['database'], r['hosts'], r['request'], ' | '.join(
                        '%s%%' % _s(sum(v for k, v in areas.items()
                                        if k.startswith(prefixes)), 1)
                        for prefixes in AREAS_SHOWN.values())))
            L.append('')

    sto = sec.get('storage')
    if sto and 'full' in sto:
        L += ['## 4. Storage efficiency', '',
              '%d shelved instances booted from an image holding %s of '
              'random data, %s of random data written into each overlay.' % (
                  sto['instances'], _bytes(sto['image_data_bytes']),
                  _bytes(sto['written_bytes_per_instance'])), '',
              '| | bytes | per instance |', '|---|---|---|',
              '| partial: shared storage (overlays + shared base) | %s | %s |'
              % (_bytes(sto['partial']['shared_storage_bytes']),
                 _bytes(sto['partial']['per_instance_bytes'])),
              '| full: image store (%s) | %s | %s |' % (
                  sto['image_source'],
                  _bytes(sto['full']['image_store_bytes']),
                  _bytes(sto['full']['per_instance_bytes'])),
              '| full: left on shared storage (the cached base) | %s | |' %
              _bytes(sto['full']['shared_storage_left_bytes']), '',
              'Full offload stores %s× the bytes of partial offload (%d '
              'uploads, %s at a time, took %.0f s; %s failed and were '
              'retried). Partial keeps one copy of the image data per '
              'storage group plus each instance\'s own changes; full keeps '
              'a flattened copy of image data + changes per instance: '
              'N×(B+W) vs. B+N×W.' % (
                  _s(sto['ratio_full_to_partial'], 1), sto['instances'],
                  sto['full'].get('upload_parallelism', '?'),
                  sto['full']['escalation_seconds'],
                  sto['full'].get('failed_uploads_retried', 0)), '']

    L += ['## Runtimes', '', 'Load average (1 min) before and after each '
          'section, for %d CPUs: the machine may run other jobs.' %
          (results['machine'].get('cpus') or 0), '',
          '| section | started | seconds | load average |',
          '|---|---|---|---|']
    loads = results.get('load_average', {})
    runs = results.get('section_runs', {})
    # In the sections' own order (a run and a results.json read back keep
    # their keys in different orders), the total last.
    order = ('latency', 'mass', 'mass_large', 'storage', 'scheduler',
             'total')
    for name, seconds in sorted(
            results['runtimes_seconds'].items(),
            key=lambda kv: (order.index(kv[0]) if kv[0] in order
                            else len(order) - 1, kv[0])):
        load = loads.get(name)
        L.append('| %s | %s | %.0f | %s |' % (
            name, runs.get(name, {}).get('started_at', ''), seconds,
            '%.1f → %.1f' % tuple(load) if load else ''))
    L.append('')
    with open(path, 'w') as f:
        f.write('\n'.join(L))


def _growth(rows: list[dict]) -> list[str]:
    out = []
    by = {}
    for r in rows:
        by.setdefault((r['database'], r['request']), {})[r['hosts']] = (
            r['decision_ms']['median'])
    for (db, req), points in sorted(by.items()):
        hosts = sorted(points)
        steps = ['%d→%d: %.1f×' % (a, b, points[b] / points[a])
                 for a, b in zip(hosts, hosts[1:], strict=False)
                 if points[a]]
        if steps:
            out.append('%s/%s %s' % (db, req, ', '.join(steps)))
    return out
