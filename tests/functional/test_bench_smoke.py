"""The benchmark tool's ``--quick`` mode end to end: it runs the four
comparisons on small sizes (libvirt test driver, local image directory, no
Glance/RabbitMQ/PostgreSQL) and writes results.json, results.md and
latency.png of the expected shape. The numbers themselves are not checked:
numbers belong in the benchmark, not in timed tests."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SECTIONS = ('latency', 'mass', 'scheduler', 'storage')
SUMMARY_KEYS = {'n', 'median', 'min', 'max', 'p25', 'p75', 'p99', 'values'}


def test_quick_benchmark_writes_results(tmp_path):
    pytest.importorskip('libvirt')
    pytest.importorskip('matplotlib')
    output = tmp_path / 'out'
    work = tmp_path / 'work'
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, '-m', 'tools.bench.run', '--quick', '--output',
         str(output), '--work-dir', str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    results = json.loads((output / 'results.json').read_text())
    assert results['mode'] == 'quick'
    assert results['errors'] == {}
    assert set(results['sections']) == set(SECTIONS)
    machine = results['machine']
    for key in ('cpu_model', 'cpus', 'memory_bytes', 'kernel',
                'acceleration', 'libvirt', 'qemu', 'disk'):
        assert key in machine, key
    assert set(results['runtimes_seconds']) >= set(SECTIONS) | {'total'}

    latency = results['sections']['latency']
    assert len(latency['sizes']) == 2
    for size in latency['sizes']:
        for kind in ('floor', 'partial_same_host', 'partial_other_host',
                     'full'):
            for op in ('unshelve', 'shelve'):
                summary = size['summary'][kind][op]
                assert SUMMARY_KEYS <= set(summary), (kind, op)
                assert summary['n'] >= 1
                assert summary['median'] > 0
        for run in size['partial_same_host'] + size['partial_other_host']:
            for op in ('unshelve', 'shelve'):
                assert run[op]['uploaded_bytes'] == 0
                assert run[op]['downloaded_bytes'] == 0
        for run in size['full']:
            assert run['shelve']['uploaded_bytes'] > 0
            assert run['unshelve']['downloaded_bytes'] > 0

    mass = results['sections']['mass']['runs']['aio']
    assert mass['unshelved'] == mass['instances']
    assert mass['hosts_over_capacity'] == 0
    assert SUMMARY_KEYS <= set(mass['latency'])

    scheduler = results['sections']['scheduler']['results']
    assert {(r['hosts'], r['request']) for r in scheduler} == {
        (h, k) for h in (100, 300) for k in ('unshelve', 'boot')}
    for row in scheduler:
        assert row['decision_ms']['median'] > 0
        assert row['commit_floor_ms']['median'] > 0

    storage = results['sections']['storage']
    assert storage['partial']['shared_storage_bytes'] > 0
    assert storage['full']['image_store_bytes'] > 0
    assert storage['full']['instances_without_image'] == 0

    headline = results['headline']
    assert {'latency', 'mass', 'scheduler', 'storage'} <= set(headline)

    markdown = (output / 'results.md').read_text()
    assert markdown.startswith('# Benchmark results')
    for title in ('## Machine', '## Targets', '## 1.', '## 2.', '## 3.',
                  '## 4.'):
        assert title in markdown, title
    assert (output / 'latency.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # Every scratch file is gone.
    assert os.listdir(work) == []
