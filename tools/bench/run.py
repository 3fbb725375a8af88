"""Run the benchmark comparisons side by side and write the results.

    .venv/bin/python -m tools.bench.run --full     # everything (~1.5 hours)
    .venv/bin/python -m tools.bench.run --quick    # smoke run (< 1 minute)

Writes ``results.json``, ``results.md`` and ``latency.png`` into
``--output`` (default ``doc/benchmarks``; ``--quick`` defaults to a
temporary directory so that it never overwrites the committed results);
into doc/benchmarks also the figures README.rst quotes (between its
markers, ``tools/bench/figures.py``).
Run from the repository root, as root (``qemu:///system``), on a machine
prepared by ``tools/setup.sh``; ``--full`` also needs RabbitMQ and
PostgreSQL (as the integration tests), MariaDB for the 1,000-instance
burst (section ``mass_large``), and builds or reuses the Glance
virtualenv of the functional tests.

Each comparison runs in its own child process (``--section``), so a
failure or a time-out in one still leaves the others' results; the parent
merges the fragments. A full run measures one section at a time;
``--quick`` runs them side by side (its numbers are not the benchmark's).
Scratch files live under ``--work-dir`` (default /var/tmp) and are removed
at the end of each section.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from tools.bench import common

SECTIONS = ('scheduler', 'mass', 'mass_large', 'storage', 'latency')
# Sections a --quick run leaves out: mass_large is the 1,000-instance
# multi-process burst, nothing to smoke-test in under a minute.
NOT_QUICK = ('mass_large',)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEFAULT_OUTPUT = os.path.join(REPO, 'doc', 'benchmarks')
README = os.path.join(REPO, 'README.rst')


class Options:
    """What a mode measures."""

    def __init__(self, args) -> None:
        quick = args.quick
        self.quick = quick
        self.mode = 'quick' if quick else 'full'
        self.work_dir = args.work_dir
        self.log_dir = args.log_dir
        self.profile_dir = args.profile_dir
        self.libvirt_uri = args.libvirt_uri
        self.op_timeout = 120 if quick else 1800
        # 1. latency
        self.sizes = ([16 * common.MiB, 64 * common.MiB] if quick else
                      [1 * common.GiB, 4 * common.GiB, 16 * common.GiB])
        if args.sizes:
            self.sizes = [int(float(s) * common.MiB)
                          for s in args.sizes.split(',')]
        self.runs = args.runs or (2 if quick else 7)
        self.full_runs = args.full_runs or (2 if quick else 5)
        self.min_full_runs = 1 if quick else 5
        self.glance = not quick
        self.latency_budget = args.latency_budget or (
            60 if quick else 50 * 60)
        # 2. mass unshelve
        self.mass_instances = args.mass_instances or (10 if quick else 200)
        self.mass_hosts = 2 if quick else 20
        self.multiprocess = not quick
        # 3. scheduler
        self.sched_hosts = [100, 300] if quick else [100, 1000, 10000]
        self.sched_requests = ({100: 10, 300: 10} if quick else
                               {100: 200, 1000: 100, 10000: 30})
        self.postgresql = not quick
        # 4. storage
        self.storage_instances = 5 if quick else 100
        self.storage_written = (1 if quick else 16) * common.MiB
        self.storage_base = (8 if quick else 128) * common.MiB
        self.storage_upload_parallel = 4

    def start_glance(self, workdir: str):
        from tools.bench import glance
        # Several uploads at once (storage_upload_parallel) need a
        # registry that takes concurrent writes.
        return glance.RunningGlance(workdir, postgresql=self.postgresql)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='python -m tools.bench.run',
        description='Benchmarks: partial vs full offload, mass unshelve, '
        'scheduler scale, storage efficiency.')
    mode = p.add_mutually_exclusive_group()
    mode.add_argument('--quick', action='store_true',
                      help='small sizes, few runs, no Glance/RabbitMQ/'
                      'PostgreSQL (< 1 minute)')
    mode.add_argument('--full', action='store_true',
                      help='the real benchmark (default)')
    p.add_argument('--output', help='directory for results.json, '
                   'results.md, latency.png (default doc/benchmarks; '
                   'a temporary directory for --quick)')
    p.add_argument('--only', help='comma-separated subset of %s'
                   % ','.join(SECTIONS))
    p.add_argument('--work-dir', default='/var/tmp',
                   help='where scratch files go (default /var/tmp)')
    p.add_argument('--libvirt-uri',
                   help='default qemu:///system; test:///default for '
                   '--quick')
    p.add_argument('--budget-minutes', type=float, default=75,
                   help='time budget of the whole run (latency adapts the '
                   'number of full-offload runs at the largest size)')
    p.add_argument('--sizes', help='latency disk sizes in MiB, e.g. '
                   '1024,4096,16384')
    p.add_argument('--runs', type=int)
    p.add_argument('--full-runs', type=int)
    p.add_argument('--mass-instances', type=int)
    p.add_argument('--report-only', action='store_true',
                   help='rewrite results.md, latency.png, the headline in '
                   'results.json and (for doc/benchmarks) the figures in '
                   'README.rst from the results.json in --output, without '
                   'measuring')
    # Internal: one section in this process.
    p.add_argument('--section', choices=SECTIONS, help=argparse.SUPPRESS)
    p.add_argument('--fragment', help=argparse.SUPPRESS)
    p.add_argument('--log-dir', help=argparse.SUPPRESS)
    p.add_argument('--profile-dir', help=argparse.SUPPRESS)
    p.add_argument('--latency-budget', type=float, help=argparse.SUPPRESS)
    return p


def _run_section(args) -> int:
    opts = Options(args)
    opts.fragment = args.fragment
    if args.section == 'latency':
        from tools.bench import latency as module
    elif args.section in ('mass', 'mass_large'):
        from tools.bench import mass as module
    elif args.section == 'scheduler':
        from tools.bench import scheduler as module
    else:
        from tools.bench import storage as module
    started = time.monotonic()
    result = (module.run_large(opts) if args.section == 'mass_large'
              else module.run(opts))
    result['seconds'] = time.monotonic() - started
    with open(args.fragment, 'w') as f:
        json.dump(result, f, indent=1)
    return 0


def _child_args(args, section: str, fragment: str,
                latency_budget: float | None) -> list[str]:
    cmd = [sys.executable, '-m', 'tools.bench.run', '--section', section,
           '--fragment', fragment, '--work-dir', args.work_dir,
           '--log-dir', args.log_dir, '--profile-dir', args.profile_dir,
           '--libvirt-uri', args.libvirt_uri]
    if args.quick:
        cmd.append('--quick')
    for flag in ('sizes', 'runs', 'full_runs', 'mass_instances'):
        value = getattr(args, flag)
        if value:
            cmd += ['--' + flag.replace('_', '-'), str(value)]
    if latency_budget:
        cmd += ['--latency-budget', str(int(latency_budget))]
    return cmd


def _exit_on_signal(signum, _frame):
    # SystemExit in the main thread: every ``finally`` runs (guests
    # undefined, Glance and the service processes stopped, scratch files
    # removed). A background job of a non-interactive shell inherits
    # SIGINT ignored; restore it too.
    raise SystemExit(128 + signum)


def _wait_child(child: subprocess.Popen) -> int:
    try:
        return child.wait()
    except BaseException:
        _stop_children([child])
        raise


def _stop_children(children: list[subprocess.Popen]) -> None:
    """SIGTERM (each cleans up), SIGKILL after 10 minutes."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(600)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _start_section(args, results: dict, scratch: str, section: str,
                   deadline: float) -> tuple:
    """Start the child process of ``section``; what
    :func:`_finish_section` needs."""
    fragment = os.path.join(scratch, section + '.json')
    budget = None
    if section == 'latency' and not args.quick:
        budget = max(deadline - time.monotonic() - 120, 600)
    common.log('== %s ==', section)
    results['section_runs'][section] = {
        'started_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'command': results['command'],
        'git': results['machine'].get('git')}
    child = subprocess.Popen(_child_args(args, section, fragment, budget),
                             cwd=REPO)
    return fragment, child, time.monotonic(), os.getloadavg()[0]


def _finish_section(args, results: dict, section: str, fragment: str,
                    child: subprocess.Popen, t0: float,
                    load_before: float) -> None:
    returncode = _wait_child(child)
    results['runtimes_seconds'][section] = time.monotonic() - t0
    # The 1-minute load average around each section: the machine may be
    # shared (other jobs add noise to the numbers).
    results['load_average'][section] = [load_before, os.getloadavg()[0]]
    if returncode == 0 and os.path.exists(fragment):
        with open(fragment) as f:
            results['sections'][section] = json.load(f)
        results['errors'].pop(section, None)
    else:
        if os.path.exists(fragment + '.partial'):
            # What the section measured before it failed.
            with open(fragment + '.partial') as f:
                partial = json.load(f)
            partial['incomplete'] = True
            results['sections'][section] = partial
        results['errors'][section] = (
            'section exited with status %s (log: %s)' % (returncode,
                                                         args.log_dir))
        common.log('%s failed (status %s)', section, returncode)


def _previous_results(output: str, args, sections: list[str]) -> dict:
    """The results.json already in ``output`` when only some sections run
    (and in the same mode), else {}."""
    path = os.path.join(output, 'results.json')
    everything = set(SECTIONS) - (set(NOT_QUICK) if args.quick else set())
    if set(sections) >= everything or not os.path.exists(path):
        return {}
    with open(path) as f:
        previous = json.load(f)
    if previous.get('mode') != ('quick' if args.quick else 'full'):
        return {}
    return previous


def _write_report(results: dict, output: str) -> None:
    """results.json (with its headline), results.md, latency.png and, when
    ``output`` is doc/benchmarks, the README's figures: all from the same
    results."""
    from tools.bench import figures
    from tools.bench import plot
    from tools.bench import report
    writes = report.read_writes(output)
    results['headline'] = report.headline(results, writes)
    with open(os.path.join(output, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write('\n')
    report.write_markdown(results, os.path.join(output, 'results.md'))
    plot.plot(results, os.path.join(output, 'latency.png'))
    if os.path.realpath(output) == os.path.realpath(DEFAULT_OUTPUT):
        figures.rewrite(README, figures.block(results, results['headline']))


def _report_only(output: str) -> int:
    with open(os.path.join(output, 'results.json')) as f:
        results = json.load(f)
    _write_report(results, output)
    return 0


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    args = _parser().parse_args(argv)
    if not args.libvirt_uri:
        args.libvirt_uri = ('test:///default' if args.quick
                            else 'qemu:///system')
    if args.section:
        return _run_section(args)
    if args.report_only:
        return _report_only(args.output or DEFAULT_OUTPUT)

    output = args.output or (tempfile.mkdtemp(prefix='lifecycle-bench-')
                             if args.quick else DEFAULT_OUTPUT)
    os.makedirs(output, exist_ok=True)
    sections = (args.only.split(',') if args.only else
                [s for s in SECTIONS if not (args.quick and s in NOT_QUICK)])
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print('unknown sections: %s' % ', '.join(sorted(unknown)),
              file=sys.stderr)
        return 2
    scratch = common.make_work_dir(args.work_dir, 'lifecycle-bench-')
    args.log_dir = common.make_work_dir(scratch, 'logs-')
    args.profile_dir = os.path.join(output, 'profiles')
    os.makedirs(args.profile_dir, exist_ok=True)
    from tools.bench import machine

    started = time.monotonic()
    deadline = started + args.budget_minutes * 60
    previous = _previous_results(output, args, sections)
    results = {
        'mode': 'quick' if args.quick else 'full',
        'command': 'python -m tools.bench.run %s' % ' '.join(
            argv if argv is not None else sys.argv[1:]),
        'started_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'machine': machine.describe(args.work_dir, args.libvirt_uri),
        'sections': {}, 'errors': {}, 'runtimes_seconds': {},
        'load_average': {},
    }
    results['section_runs'] = {}
    if previous:
        # --only: the other sections stay as the earlier run measured them.
        for key in ('sections', 'errors', 'runtimes_seconds', 'load_average',
                    'section_runs'):
            for name, value in previous.get(key, {}).items():
                if name in SECTIONS and name not in sections:
                    results[key][name] = value
        for name in previous.get('sections', {}):
            if name not in sections:
                results['section_runs'].setdefault(name, {
                    'started_at': previous['started_at'],
                    'command': previous['command']})
    common.log('benchmark (%s) -> %s', results['mode'], output)
    common.log('df -h %s: %.1f GiB free', args.work_dir,
               common.free_bytes(args.work_dir) / common.GiB)
    try:
        todo = [section for section in SECTIONS if section in sections]
        # --quick: the sections side by side (its numbers are not the
        # benchmark's); a full run measures one section at a time.
        batches = [todo] if args.quick else [[section] for section in todo]
        for batch in batches:
            running = []
            try:
                for section in batch:
                    running.append((section, _start_section(
                        args, results, scratch, section, deadline)))
                pending = list(running)
                while pending:
                    # In the order they end: each one's runtime is its own.
                    for item in [i for i in pending
                                 if i[1][1].poll() is not None]:
                        pending.remove(item)
                        _finish_section(args, results, item[0], *item[1])
                    if pending:
                        time.sleep(0.2)
            except BaseException:
                _stop_children([child for _, (_, child, _, _) in running])
                raise
    finally:
        results['runtimes_seconds']['total'] = sum(
            v for k, v in results['runtimes_seconds'].items()
            if k in SECTIONS)
        results['finished_at'] = time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                               time.gmtime())
        _write_report(results, output)
        if not os.listdir(args.profile_dir):
            os.rmdir(args.profile_dir)
        failed_inside = any(
            'error' in run for section in ('mass', 'mass_large')
            for run in results['sections'].get(section, {}).get(
                'runs', {}).values())
        if results['errors'] or failed_inside:
            common.log('kept the logs of the failed parts in %s',
                       args.log_dir)
        else:
            import shutil
            shutil.rmtree(scratch, ignore_errors=True)
    common.log('done in %.0f s: %s', time.monotonic() - started, output)
    return 1 if results['errors'] else 0


if __name__ == '__main__':
    sys.exit(main())
