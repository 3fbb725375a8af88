"""The Nova virtualenv of the test tiers that run Nova's own code.

Nova and its dependency set live in a separate virtualenv, built once per
machine under ``/var/tmp/lifecycle-nova-venv/`` and keyed by
``test-requirements-nova.txt`` and the Python version, so they never leak
into the service's environment (``.venv``). Used by
``tests/functional/test_nova_filter_loader.py`` and the ``tests/nova`` tier.

``LIFECYCLE_NOVA_PYTHON`` names a Python that already has Nova (and Nova's
functional test dependencies) installed, to skip the build;
``LIFECYCLE_NOVA_VENV_ROOT`` builds it elsewhere. Under ``CI=true`` a venv
that cannot be built fails the test (``tests.conftest.require``).
"""

import hashlib
import os
import subprocess
import sys

from tests.conftest import require
from tests.harness import venvs

#: The Nova release the plugin and the filter are tested against.
NOVA_VERSION = '34.0.0'

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
REQUIREMENTS = os.path.join(REPO, 'test-requirements-nova.txt')
VENV_ROOT = os.environ.get('LIFECYCLE_NOVA_VENV_ROOT',
                           '/var/tmp/lifecycle-nova-venv')
PIP_TIMEOUT = venvs.PIP_TIMEOUT


def requirements_key() -> str:
    with open(REQUIREMENTS, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return 'nova-%s-py%d.%d-%s' % (NOVA_VERSION, sys.version_info[0],
                                  sys.version_info[1], digest)


def _fix_test_config(venv: str) -> None:
    # Nova's test configuration looks for api-paste.ini under
    # <site-packages>/etc; the wheel installs it under <venv>/etc.
    site = subprocess.run(
        [os.path.join(venv, 'bin', 'python'), '-c',
         'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        capture_output=True, text=True, check=True).stdout.strip()
    link = os.path.join(site, 'etc')
    if not os.path.lexists(link):
        os.symlink(os.path.join(venv, 'etc'), link)


def build_venv() -> tuple[str | None, str | None]:
    """Return (python path, None) or (None, reason): built once, under the
    lock of :mod:`tests.harness.venvs` (shared with the Glance, Cinder
    and Keystone venvs' builder)."""
    python, reason = venvs.build_venv(VENV_ROOT, requirements_key(),
                                      ('-r', REQUIREMENTS))
    if python is None:
        return None, reason
    try:
        _fix_test_config(os.path.dirname(os.path.dirname(python)))
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, 'api-paste.ini link: %s' % exc
    return python, None


def nova_python() -> str:
    """The Python of the Nova venv (building it if needed); skips, or fails
    under CI=true, when it cannot be had."""
    python = os.environ.get('LIFECYCLE_NOVA_PYTHON')
    if python:
        return python
    python, reason = build_venv()
    require(python is not None,
            'a virtualenv with nova==%s (%s)' % (NOVA_VERSION, reason))
    return python


def clean_env(**extra: str) -> dict:
    """The environment for a process in the Nova venv: no PYTHON* variables
    of ours, no user site, warnings off."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('PYTHON')}
    env.update(PYTHONNOUSERSITE='1', PYTHONWARNINGS='ignore')
    env.update(extra)
    return env


def failure_summary(detail: str, tail: int = 6000) -> str:
    """A failed case's first ERROR log records with their tracebacks (the
    compute's own exception is often far above the test's traceback, and
    a race is read from its frames), then the end of its output."""
    lines = detail.splitlines()
    picked = []
    records = 0
    for index, line in enumerate(lines):
        if ' ERROR ' not in line:
            continue
        records += 1
        if records > 3:
            break
        picked.append(line)
        # The record's traceback: the lines up to the next log record.
        for following in lines[index + 1:index + 80]:
            if following[:4].isdigit() and ' [' in following:
                break
            picked.append(following)
    return '\n'.join(picked + ['...'] + [detail[-tail:]])
