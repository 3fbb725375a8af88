"""The process's policy enforcer (lifecycle.policy) under the API's request
threads: a policy file override, its reload on :func:`policy.reset`
(SIGHUP), and checks racing a reload of the file."""

import os
import sys
import threading
import time

import pytest
from oslo_config import cfg
from oslo_policy import opts as policy_opts

from lifecycle import policy

MEMBER = {'roles': ['member', 'reader'], 'project_id': 'p1', 'user_id': 'u1',
          'is_admin': False}
TARGET = {'project_id': 'p1', 'user_id': 'u1'}
OFFLOAD = 'os_compute_api:os-shelve:shelve_offload'
INDEX = 'os_compute_api:servers:index'


def _install(path: str, text: str, mtime: float) -> None:
    tmp = path + '.new'
    with open(tmp, 'w') as f:
        f.write(text)
    os.utime(tmp, (mtime, mtime))
    os.rename(tmp, path)


@pytest.fixture
def policy_file(tmp_path):
    path = str(tmp_path / 'policy.yaml')
    _install(path, '"%s": "rule:context_is_admin"\n' % OFFLOAD, time.time())
    conf = cfg.ConfigOpts()
    policy_opts.set_defaults(conf)
    conf([], default_config_files=[])
    conf.set_override('policy_file', path, group='oslo_policy')
    policy.reset()
    policy.get_enforcer(conf)
    yield path
    policy.reset()


def _allowed(rule: str) -> bool:
    return policy.get_enforcer().authorize(rule, TARGET, MEMBER,
                                           do_raise=False)


def test_reset_rereads_the_policy_file(policy_file):
    assert not _allowed(OFFLOAD)
    # An older modification time (cp -p): oslo.policy's own check of the
    # time does not see the change; a reset does.
    conf = policy.get_enforcer().conf
    _install(policy_file, '"%s": "rule:project_member_or_admin"\n' % OFFLOAD,
             os.path.getmtime(policy_file) - 3600)
    assert not _allowed(OFFLOAD)
    policy.reset()
    policy.get_enforcer(conf)
    assert _allowed(OFFLOAD)
    assert _allowed(INDEX)


def test_a_changed_file_is_looked_for_once_per_interval(policy_file):
    """A newer policy file applies once the interval since the last look
    has passed; until then checks use the rules they have (no stat per
    check)."""
    enforcer = policy.get_enforcer()
    enforcer.recheck_seconds = 3600
    assert not _allowed(OFFLOAD)
    _install(policy_file, '"%s": "rule:project_member_or_admin"\n' % OFFLOAD,
             os.path.getmtime(policy_file) + 10)
    assert not _allowed(OFFLOAD)
    enforcer.recheck_seconds = 0
    assert _allowed(OFFLOAD)
    assert _allowed(INDEX)


def test_reset_leaves_an_enforcer_in_use_working(policy_file):
    """A request thread that got the enforcer before the reset still checks
    with it (a cleared enforcer had no rules registered: a 500)."""
    held = policy.get_enforcer()
    policy.reset()
    assert held.authorize(INDEX, TARGET, MEMBER, do_raise=False)
    assert not held.authorize(OFFLOAD, TARGET, MEMBER, do_raise=False)


def test_checks_racing_a_reload_of_the_file(policy_file):
    """While the file changes (each version newer), a member keeps being
    allowed what the defaults allow. oslo.policy replaces its rules with
    the file's and then adds the defaults back: unlocked, a check between
    the two refused (about a hundred times in this test)."""
    enforcer = policy.get_enforcer()
    enforcer.recheck_seconds = 0  # every check looks for a changed file
    stop = threading.Event()
    refused: list[int] = []
    checks = [0]

    def check() -> None:
        while not stop.is_set():
            checks[0] += 1
            if not enforcer.authorize(INDEX, TARGET, MEMBER,
                                      do_raise=False):
                refused.append(1)

    def rewrite() -> None:
        base = time.time()
        n = 0
        while not stop.is_set():
            n += 1
            _install(policy_file, '"%s": "role:r%d"\n' % (OFFLOAD, n),
                     base + n)
            time.sleep(0.001)

    interval = sys.getswitchinterval()
    # Switch threads as often as possible: the window is a few bytecodes.
    sys.setswitchinterval(1e-6)
    threads = [threading.Thread(target=check) for _ in range(4)]
    threads.append(threading.Thread(target=rewrite))
    try:
        for thread in threads:
            thread.start()
        time.sleep(2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(interval)
    assert checks[0] > 100
    assert refused == []
