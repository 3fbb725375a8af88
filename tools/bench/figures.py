"""The benchmark figures README.rst quotes, written from the same
results.json as results.md.

``python -m tools.bench.run --report-only`` (and a full run into
doc/benchmarks) rewrites the lines between :data:`BEGIN` and :data:`END`
in README.rst; ``tests/unit/test_bench_report.py`` checks that the
committed README holds what the committed results.json gives.
"""

import textwrap

from tools.bench import common
from tools.bench import report
from tools.bench import targets
from tools.bench.targets import num

BEGIN = '.. begin benchmark figures (tools/bench/figures.py; do not edit)'
END = '.. end benchmark figures'
WIDTH = 79


def _by_id(verdicts: list[dict]) -> dict:
    return {v['id']: v for v in verdicts}


def _status(v: dict | None) -> str:
    if v is None or v['status'] == 'not measured':
        return targets.NOT_MEASURED
    return v['status']


def _gib(gib: float) -> str:
    return targets.size(gib * common.GiB).replace('.0 ', ' ')


def _latency(results: dict, h: dict, by: dict) -> list[str]:
    lat = results['sections'].get('latency')
    if not lat or not h.get('latency'):
        return ['one unshelve against a bare define + start of the same '
                'domain: %s' % targets.NOT_MEASURED]
    rows = h['latency']
    client = all(r.get('partial_same_host_client_over_floor') is not None
                 for r in rows)
    key = ('partial_same_host_client_over_floor' if client
           else 'partial_same_host_over_floor')
    same = ['%s× at %s' % (num(r[key], 2), _gib(r['size_gib']))
            for r in rows]
    worst = [by.get('unshelve_over_floor/%d/%s' % (s['size_bytes'], kind))
             for s in lat['sizes']
             for kind in ('partial_same_host', 'partial_other_host')]
    verdict = ('missed' if any(v and v['status'] == 'missed' for v in worst)
               else 'met' if worst and all(v and v['status'] == 'met'
                                           for v in worst)
               else targets.NOT_MEASURED)
    out = ['one partial unshelve%s against a bare define + start of the '
           'same domain (%s): %s of written disk data (same host; target '
           '≤ %g× on either host: %s)' % (
               ' as the polling client saw it' if client else '',
               results['machine'].get('acceleration'), ', '.join(same),
               targets.UNSHELVE_OVER_FLOOR_MAX, verdict)]
    flat = by.get('flat')
    if flat and flat['value'] is not None:
        out[-1] += '; flat in disk size (%s / %s: %s)' % (
            _gib(lat['sizes'][-1]['size_bytes'] / common.GiB),
            _gib(lat['sizes'][0]['size_bytes'] / common.GiB),
            flat['measured'])
    moved = [v for k, v in by.items() if k.startswith('no_disk_data/')]
    if moved:
        out[-1] += '; %s' % ('0 bytes of disk data moved' if all(
            v['status'] == 'met' for v in moved) else
            'disk data moved: %s' % '; '.join(v['measured'] for v in moved))
    full = [r for r in rows if r['full_over_partial_unshelve']]
    if full:
        out.append('full offload (the stock-Nova path, through %s) against '
                   'partial, unshelve: slower by %s' % (
                       'Glance' if lat.get('glance') else
                       lat.get('image_source', 'the image service'),
                       ', '.join('%s× at %s' % (
                           num(r['full_over_partial_unshelve'], 1),
                           _gib(r['size_gib'])) for r in full)))
    return out


def _storage(results: dict) -> list[str]:
    sto = results['sections'].get('storage')
    if not sto or 'full' not in sto:
        return ['storage of shelved instances: %s' % targets.NOT_MEASURED]
    return ['storage for %d shelved instances: full offload keeps %s× the '
            'bytes of partial (%s in the image store against %s of '
            'overlays + base)' % (
                sto['instances'], num(sto['ratio_full_to_partial'], 1),
                targets.size(sto['full']['image_store_bytes']),
                targets.size(sto['partial']['shared_storage_bytes']))]


def _mass(by: dict) -> list[str]:
    parts = []
    for key, what, limit in targets.MASS_RUNS:
        v = by.get('mass_p99/%s' % key)
        scale = what.split(', multi-process')[0].split(', all-in-one')[0]
        label = scale + (', all-in-one' if key == 'aio' else
                         ', multi-process')
        if v is None or v['status'] in ('not measured', 'failed'):
            parts.append('%s: %s' % (label, _status(v) if v is None or
                                     v['status'] != 'failed' else 'failed'))
            continue
        extra = [by['mass_over_capacity/%s' % key],
                 by['mass_retries/%s' % key]]
        parts.append('%s: per-instance p99 %s (≤ %g s: %s), %s hosts over '
                     'capacity, %s retries' % (
                         label, v['measured'].split(' (')[0], limit,
                         v['status'], num(extra[0]['value'], 0),
                         extra[1]['measured'].split(' (')[0]))
    return ['mass unshelve: ' + '; '.join(parts)]


def _scheduler(by: dict) -> list[str]:
    parts = []
    for db, hosts, request in targets.SCHEDULER_NAMED:
        v = by.get('scheduler/%s/%d/%s' % (db, hosts, request))
        limit = targets.SCHEDULER_P50_MS[db][hosts]
        parts.append('%s %s at %s hosts (%s; ≤ %g ms: %s)' % (
            {'sqlite': 'SQLite', 'postgresql': 'PostgreSQL'}[db],
            v['measured'] if v and v['status'] not in (
                'not measured', 'failed') else '-',
            f'{hosts:,}', request, limit, _status(v)))
    return ['scheduler decision (filter + weigh + claim), p50: ' +
            '; '.join(parts)]


def _writes(by: dict) -> list[str]:
    v = by.get('writes_per_unshelve')
    if v is None or v['status'] == 'not measured':
        return ['durable write transactions per unshelve: %s' %
                targets.NOT_MEASURED]
    return ['durable write transactions per unshelve: %s' % v['measured'] +
            ('; %s' % v['floor'] if v['floor'] else '')]


def block(results: dict, h: dict) -> str:
    """The README's figures (reStructuredText, without the markers) from
    ``results`` and its :func:`report.headline` ``h``."""
    by = _by_id(h['targets'])
    machine = results['machine']
    loads = [x for pair in results.get('load_average', {}).values()
             for x in pair]
    tally = targets.counts(h['targets'])
    intro = ('Measured on %s (%s mode; %s, %s CPUs, %s%s; 1-minute load '
             'average %s-%s around the sections, on a machine shared with '
             'other jobs):' % (
                 report.measured_on(results), results['mode'],
                 machine.get('cpu_model'), machine.get('cpus'),
                 machine.get('acceleration'),
                 ', a virtual machine' if machine.get('virtualized') else '',
                 num(min(loads), 1) if loads else '?',
                 num(max(loads), 1) if loads else '?'))
    items = (_latency(results, h, by) + _storage(results) + _mass(by) +
             _scheduler(by) + _writes(by) +
             ['targets: %s (each one, with its floor, profile and load, in '
              'results.md)' % ', '.join(
                  '%d %s' % (tally[k], k) for k in
                  ('met', 'missed', 'reported', 'failed', 'not measured')
                  if k in tally)])
    lines = textwrap.wrap(intro, WIDTH) + ['']
    for item in items:
        lines += textwrap.wrap(item + ';' if item is not items[-1] else
                               item + '.', WIDTH, initial_indent='- ',
                               subsequent_indent='  ',
                               break_on_hyphens=False)
    return '\n'.join(lines) + '\n'


def current(readme: str) -> str | None:
    """The figures between the markers of ``readme`` (its text), or None
    when it has no markers."""
    if BEGIN not in readme or END not in readme:
        return None
    return readme.split(BEGIN, 1)[1].split(END, 1)[0].strip('\n') + '\n'


def rewrite(path: str, text: str) -> bool:
    """Put ``text`` between the markers of the file at ``path``; False
    (file unchanged) when the file has no markers."""
    with open(path) as f:
        readme = f.read()
    if current(readme) is None:
        common.log('%s has no benchmark figures markers; not rewritten', path)
        return False
    before, rest = readme.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    with open(path, 'w') as f:
        f.write('%s%s\n\n%s\n%s%s' % (before, BEGIN, text, END, after))
    return True
