"""Nova's Rbd image backend through the plugin on the project's real
single-node Ceph: unshelve on another host keeps the clone and its parent
(no flatten); the clone of a server deleted while offloaded is removed by
the periodic pass and by ``lifecycle-manage nova disks cleanup``, never a
live one's; escalation by age and by the pool's watermark (a pool with a
quota) uploads, verifies, records and only then removes the clone, and
stock unshelve then works on a host of no group. The cases run in the
Nova venv (tests/nova/framework); the cluster, its pools, a protected base
snapshot and the rados/rbd Python bindings (Debian's python3-rados and
python3-rbd, which ceph-common brings) come from here."""

import json
import os
import subprocess
import tempfile

import pytest

from tests.conftest import require
from tests.nova import venv

pytestmark = pytest.mark.slow

MODULE = 'tests.nova.framework.cases_rbd.RbdPartialOffloadTest'
CASES = [
    'test_unshelve_elsewhere_keeps_the_clone',
    'test_delete_while_offloaded_removes_the_clone',
    'test_disks_audit_and_cleanup',
    'test_escalation_by_age_then_stock_unshelve',
    'test_escalation_by_pool_watermark',
]
#: The quota of the watermark cases' pool.
WATERMARK_QUOTA = 64 * 1024 * 1024
DIST = '/usr/lib/python3/dist-packages'


def _bindings_dir(workdir):
    """Only rados and rbd of the system's Python on the Nova venv's path."""
    found = 0
    for name in os.listdir(DIST) if os.path.isdir(DIST) else ():
        if name.split('.')[0] in ('rados', 'rbd') and name.endswith('.so'):
            os.symlink(os.path.join(DIST, name), os.path.join(workdir, name))
            found += 1
    return found == 2


#: ``ceph`` for the Nova process: the real one, asked again when it got no
#: command table from the monitor (EPERM, "problem getting command
#: descriptions": the command did not run), which the test cluster's
#: monitor answers now and then -- as tests/functional/ceph_fixture.py's
#: own ``ceph()`` does. Nova runs ``ceph mon dump`` on every spawn
#: (``RBDDriver.get_mon_addrs``).
CEPH_RETRY = """#!/bin/bash
for attempt in $(seq 1 50); do
    err=$(mktemp)
    out=$(/usr/bin/ceph "$@" 2>"$err")
    rc=$?
    if [ $rc -eq 0 ] || ! grep -q 'problem getting command descriptions' \
            "$err"; then
        cat "$err" >&2; rm -f "$err"; printf '%s' "$out"; exit $rc
    fi
    rm -f "$err"; sleep 0.1
done
exec /usr/bin/ceph "$@"
"""

_results = {}


def _run(cluster):
    if _results:
        return _results
    python = venv.nova_python()
    workdir = tempfile.mkdtemp(prefix='lifecycle-nova-rbd-')
    require(_bindings_dir(workdir),
            'the rados/rbd Python bindings (python3-rados, python3-rbd)')
    pool = cluster.create_pool('nova-rbd-%d' % os.getpid())
    watermark_pool = cluster.create_pool('nova-rbd-wm-%d' % os.getpid())
    cluster.ceph('osd', 'pool', 'set-quota', watermark_pool, 'max_bytes',
                 str(WATERMARK_QUOTA))
    cluster.rbd('create', '--size', '8', '%s/base' % pool)
    cluster.rbd('snap', 'create', '%s/base@snap' % pool)
    cluster.rbd('snap', 'protect', '%s/base@snap' % pool)
    fsid = json.loads(cluster.ceph('fsid', '--format', 'json'))['fsid']
    bindir = os.path.join(workdir, 'bin')
    os.makedirs(bindir)
    with open(os.path.join(bindir, 'ceph'), 'w') as f:
        f.write(CEPH_RETRY)
    os.chmod(os.path.join(bindir, 'ceph'), 0o755)
    env = venv.clean_env(
        PATH=os.pathsep.join([bindir, os.environ.get('PATH', '')]),
        PYTHONPATH=os.pathsep.join([venv.REPO, workdir]),
        LIFECYCLE_TEST_CEPH_CONF=cluster.conf,
        LIFECYCLE_TEST_CEPH_POOL=pool,
        LIFECYCLE_TEST_CEPH_WATERMARK_POOL=watermark_pool,
        LIFECYCLE_TEST_CEPH_WATERMARK_QUOTA=str(WATERMARK_QUOTA),
        LIFECYCLE_TEST_CEPH_FSID=fsid,
        LIFECYCLE_TEST_CEPH_BASE='base@snap')
    proc = subprocess.run(
        [python, '-m', 'tests.nova.framework.run'] +
        ['%s.%s' % (MODULE, case) for case in CASES],
        cwd=venv.REPO, env=env, capture_output=True, text=True, timeout=900)
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-8000:]
    _results.update(json.loads(lines[-1]))
    # Every case removes what it made: nothing is left behind.
    _results['_left'] = (cluster.children('%s/base@snap' % pool),
                         cluster.images(watermark_pool))
    return _results


@pytest.mark.parametrize('case', CASES)
def test_rbd_case(ceph_cluster, case):
    results = _run(ceph_cluster)
    test_id = '%s.%s' % (MODULE, case)
    assert test_id in results, 'case did not run; ran: %s' % sorted(results)
    outcome = results[test_id]
    assert outcome['status'] == 'passed', venv.failure_summary(
        outcome['detail'])
    assert results['_left'] == ([], [])
