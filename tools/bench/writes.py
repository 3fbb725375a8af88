"""Durable write transactions per operation, counted.

``python -m tools.bench.writes [--output doc/benchmarks/writes.md]
[--json doc/benchmarks/writes.json]``

An all-in-one on the test driver (SQLite, inproc://) boots one server, then
shelves (with the offload at once), unshelves and deletes it, one operation
at a time. Every committed transaction that wrote something is counted, by
what it wrote: the flow store (``logbooks``, ``flowdetails``,
``atomdetails``), or the project's own tables (instances, claims,
faults, accepted requests). Read-only transactions are not counted. Each
operation is waited for through the API, so the count covers everything
the request caused, on every service. The JSON (``rows``, ``commit``,
``generated_at``) is what the benchmark report (``tools/bench/report.py``)
reads for its write-transactions target.
"""

import argparse
import collections
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import sqlalchemy as sa

from tools.bench import aio as bench_aio
from tools.bench import common

FLOW_TABLES = frozenset(('logbooks', 'flowdetails', 'atomdetails'))
_WRITE = re.compile(r'^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)',
                    re.I)


class WriteCounter:
    """Committed write transactions on one engine, split by what they
    wrote (per thread: every session is one transaction of one thread)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.counts: collections.Counter = collections.Counter()
        self.tables: collections.Counter = collections.Counter()
        self._local = threading.local()
        self._lock = threading.Lock()
        sa.event.listen(engine, 'begin', self._begin)
        sa.event.listen(engine, 'before_cursor_execute', self._statement)
        sa.event.listen(engine, 'commit', self._commit)
        sa.event.listen(engine, 'rollback', self._begin)

    def _begin(self, _connection) -> None:
        self._local.written = set()

    def _statement(self, _conn, _cursor, statement, *_args) -> None:
        match = _WRITE.match(statement)
        if match:
            if not hasattr(self._local, 'written'):
                self._local.written = set()
            self._local.written.add(match.group(2).lower())

    def _commit(self, _connection) -> None:
        written = getattr(self._local, 'written', set())
        if not written:
            return
        kind = 'flow store' if written <= FLOW_TABLES else (
            'project' if not written & FLOW_TABLES else 'both')
        with self._lock:
            self.counts[kind] += 1
            for table in written:
                self.tables[table] += 1
        self._local.written = set()

    def take(self) -> tuple[dict, dict]:
        with self._lock:
            counts, tables = dict(self.counts), dict(self.tables)
            self.counts.clear()
            self.tables.clear()
        return counts, tables


def measure(state_dir: str) -> list[dict]:
    overrides = bench_aio.base_overrides(
        state_dir, 'test:///default', ['host-a1:group-a', 'host-a2:group-a'],
        vcpus=4, memory_mb=4096)
    overrides[(None, 'shelved_offload_time')] = 0
    rows = []
    with bench_aio.running_aio(overrides) as aio:
        counter = WriteCounter(aio.db.engine)
        client = common.Client(aio.url)
        image = client.images()[0]['id']

        def step(name: str, run, status: str | None) -> None:
            counter.take()
            server = run()
            if status:
                client.wait(server, status)
            else:
                _wait_gone(client, server)
            # The conductor's flow may still be finishing after the
            # client sees the result: its writes belong to this operation.
            _wait_no_flows(aio.db.engine)
            counts, tables = counter.take()
            rows.append({'operation': name, 'counts': counts,
                         'tables': tables,
                         'total': sum(counts.values())})

        server_id = None

        def boot():
            nonlocal server_id
            server_id = client.boot('writes', image, '1')
            return server_id

        step('boot', boot, 'ACTIVE')
        step('shelve (+ offload)', lambda: _act(client, server_id, 'shelve'),
             'SHELVED_OFFLOADED')
        step('unshelve', lambda: _act(client, server_id, 'unshelve'),
             'ACTIVE')
        step('delete', lambda: _delete(client, server_id), None)
    return rows


def _act(client, server_id: str, action: str) -> str:
    client.action(server_id, {action: None})
    return server_id


def _delete(client, server_id: str) -> str:
    status, body = client.request('DELETE', '/servers/%s' % server_id)
    assert status == 204, (status, body)
    return server_id


def _wait_no_flows(engine: sa.Engine, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            if not conn.execute(sa.text('SELECT count(*) FROM logbooks')
                                ).scalar():
                return
        assert time.monotonic() < deadline, 'flows still running'
        time.sleep(0.05)


def _wait_gone(client, server_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.request('GET', '/servers/%s' % server_id)[0] != 404:
        assert time.monotonic() < deadline, 'server %s not deleted' % server_id
        time.sleep(0.05)


def report(rows: list[dict], commit: str, generated_at: str) -> str:
    lines = [
        '# Durable write transactions per operation',
        '',
        'Generated by `python -m tools.bench.writes` at %s (commit %s): an '
        'all-in-one on the test driver, SQLite, one operation at a time; '
        'every committed transaction that wrote a row, by what it wrote. '
        '"flow store": only TaskFlow\'s tables (the persisted progress of '
        'the flows); "project": only the project\'s tables (state changes, '
        'claims, faults, accepted requests).' % (generated_at, commit),
        '',
        '| operation | flow store | project | both | total |',
        '|---|---|---|---|---|',
    ]
    for row in rows:
        c = row['counts']
        lines.append('| %s | %d | %d | %d | %d |' % (
            row['operation'], c.get('flow store', 0), c.get('project', 0),
            c.get('both', 0), row['total']))
    lines += ['', 'Tables written (transactions that wrote each):', '']
    for row in rows:
        lines.append('* %s: %s' % (row['operation'], ', '.join(
            '%s %d' % kv for kv in sorted(row['tables'].items()))))
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--output', help='write the Markdown report here')
    parser.add_argument('--json', help='write the counts as JSON here')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix='bench-writes-',
                                     dir='/var/tmp') as state_dir:
        os.chmod(state_dir, 0o755)
        bench_aio.setup_logging(os.path.join(state_dir, 'aio.log'))
        rows = measure(state_dir)
    commit = _commit()
    generated_at = datetime.datetime.now(datetime.UTC).strftime(
        '%Y-%m-%dT%H:%M:%SZ')
    text = report(rows, commit, generated_at)
    if args.output:
        with open(args.output, 'w') as f:
            f.write(text)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'rows': rows, 'commit': commit,
                       'generated_at': generated_at}, f, indent=1,
                      sort_keys=True)
            f.write('\n')
    sys.stdout.write(text)
    return 0


def _commit() -> str:
    result = subprocess.run(['git', 'rev-parse', '--short=12', 'HEAD'],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() or 'unknown'


if __name__ == '__main__':
    sys.exit(main())
