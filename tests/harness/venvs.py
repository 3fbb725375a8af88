"""Virtualenvs of the real OpenStack services the functional tests run.

Each service (Glance, Cinder, Keystone, Nova) lives in a virtualenv of its
own under ``/var/tmp/lifecycle-<service>-venv/<key>``, the key made of the
pinned requirements and the Python version, so a change of pins builds a new
one and the service never leaks into the project's environment. The build
runs once, under a file lock shared by every pytest process; ``.complete``
marks a finished install.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time

PIP_TIMEOUT = 1800


def requirements_key(name: str, version: str,
                     requirements: tuple[str, ...]) -> str:
    digest = hashlib.sha256('\n'.join(requirements).encode()).hexdigest()
    return '%s-%s-py%d.%d-%s' % (name, version, sys.version_info[0],
                                sys.version_info[1], digest[:12])


def build_venv(root: str, key: str, requirements: tuple[str, ...]
               ) -> tuple[str | None, str | None]:
    """(python of the virtualenv ``root/key``, None) or (None, why not)."""
    os.makedirs(root, exist_ok=True)
    venv = os.path.join(root, key)
    python = os.path.join(venv, 'bin', 'python')
    marker = os.path.join(venv, '.complete')
    with open(os.path.join(root, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(marker):
            return python, None
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        steps = [[sys.executable, '-m', 'venv', venv],
                 [python, '-m', 'pip', 'install', '-q', *requirements]]
        for cmd in steps:
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=PIP_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                shutil.rmtree(venv, ignore_errors=True)
                return None, '%s: %s' % (' '.join(cmd), exc)
            if proc.returncode:
                shutil.rmtree(venv, ignore_errors=True)
                tail = (proc.stdout + proc.stderr).strip()[-2000:]
                return None, '%s failed:\n%s' % (' '.join(cmd), tail)
        with open(marker, 'w') as f:
            f.write('built in %.0f s\n' % (time.monotonic() - started))
        sys.stderr.write('built %s in %.0f s\n'
                         % (venv, time.monotonic() - started))
    return python, None
