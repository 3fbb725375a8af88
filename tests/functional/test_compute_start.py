"""What ``lifecycle-compute`` checks before it starts: the storage group's
storage mounted at the same path on every host, a share it can write (not
a root-squashed one), and a warning for libvirt's test driver. Each check
runs the real command and expects exit status 2 with one clear line."""

import json
import os
import subprocess
import sys

import pytest

from lifecycle.storage import paths

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
NOBODY = 65534


def _conf(tmp_path, instances_path: str, **extra) -> str:
    path = tmp_path / ('compute-%d.conf' % len(os.listdir(tmp_path)))
    lines = ['[DEFAULT]',
             # Never contacted: the checks run before the service connects.
             'transport_url = rabbit://guest:guest@127.0.0.1:1/',
             'instances_path = %s' % instances_path, 'host = host-a1']
    lines += ['%s = %s' % kv for kv in extra.items()]
    lines += ['[database]', 'connection = sqlite:////nonexistent/db']
    path.write_text('\n'.join(lines) + '\n')
    path.chmod(0o644)
    return str(path)


def _compute(conf: str, *, user: int | None = None):
    prefix = []
    if user is not None:
        prefix = ['setpriv', '--reuid=%d' % user, '--regid=%d' % user,
                  '--clear-groups']
    return subprocess.run(
        prefix + [sys.executable, '-m', 'lifecycle.cmd.compute',
                  '--config-file', conf],
        capture_output=True, text=True, timeout=60, cwd='/',
        env=dict(os.environ, PYTHONPATH=REPO))


def test_marker_records_the_first_path(tmp_path):
    storage = tmp_path / 'export'
    paths.check_storage_root(str(storage), 'host-a1')
    with open(storage / paths.MOUNT_MARKER) as f:
        assert json.load(f) == {'instances_path': str(storage),
                                'host': 'host-a1'}
    # Same path again (a restart, a second host mounting it right): fine,
    # and the marker stays the first one.
    paths.check_storage_root(str(storage), 'host-a2')
    with open(storage / paths.MOUNT_MARKER) as f:
        assert json.load(f)['host'] == 'host-a1'


def test_compute_refuses_storage_mounted_at_another_path(tmp_path):
    storage = tmp_path / 'export'
    paths.check_storage_root(str(storage), 'host-a1')
    # The same storage seen at another path (here a symlink; a second
    # mount point of the same export behaves the same).
    elsewhere = tmp_path / 'mnt-elsewhere'
    elsewhere.symlink_to(storage)
    result = _compute(_conf(tmp_path, str(elsewhere)))
    assert result.returncode == 2, result.stdout + result.stderr
    log = result.stdout + result.stderr
    assert 'lifecycle-compute cannot start' in log, log
    assert 'was first used at %s' % storage in log, log
    assert 'same path' in log, log
    assert 'Traceback' not in log, log
    assert sorted(os.listdir(storage)) == [paths.MOUNT_MARKER]


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to drop to nobody')
def test_compute_on_a_root_squashed_share_exits_2(tmp_path):
    # What root_squash does to a service running as root: it acts as
    # nobody on a directory owned by root.
    tmp_path.chmod(0o755)
    export = tmp_path / 'export'
    export.mkdir(mode=0o755)
    result = _compute(_conf(tmp_path, str(export / 'instances')),
                      user=NOBODY)
    log = result.stdout + result.stderr
    assert result.returncode == 2, log
    assert 'root_squash' in log, log
    assert 'Traceback' not in log, log
    assert os.listdir(export) == []


def test_test_driver_warns(tmp_path):
    conf = _conf(tmp_path, str(tmp_path / 'export'))
    with open(conf, 'a') as f:
        f.write('[libvirt]\nconnection_uri = test:///default\n')
    result = _compute(conf)
    log = result.stdout + result.stderr
    # It goes on to the next check ([image] local_dir unset): exit 2.
    assert result.returncode == 2, log
    assert "libvirt's test driver" in log, log
    assert 'DomainVanished' in log, log
