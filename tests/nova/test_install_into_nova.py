"""Installing the project into Nova's virtualenv changes none of Nova's
packages (requirements.txt holds lower bounds; exact pins only in
constraints.txt).

A copy of the prebuilt Nova venv (``tests.nova.venv``) gets ``pip install``
of this repository the way an operator would run it (no constraints file);
``pip freeze`` before and after must agree on every package that was already
there, and the console scripts of the Nova mode must be installed.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

from tests.nova import venv

pytestmark = pytest.mark.slow


def _freeze(python):
    out = subprocess.run([python, '-m', 'pip', 'freeze', '--all'],
                         capture_output=True, text=True, check=True,
                         env=venv.clean_env()).stdout
    pins = {}
    for line in out.splitlines():
        if '==' in line:
            name, version = line.split('==', 1)
            pins[name.lower().replace('_', '-')] = version
    return pins


@pytest.fixture(scope='module')
def venv_copy():
    python = venv.nova_python()
    source = os.path.dirname(os.path.dirname(python))
    workdir = tempfile.mkdtemp(prefix='lifecycle-nova-install-',
                               dir='/var/tmp')
    copy = os.path.join(workdir, 'venv')
    # A venv copy works when run as <copy>/bin/python: sys.prefix comes from
    # the pyvenv.cfg next to it (the copied scripts' shebangs are not used).
    shutil.copytree(source, copy, symlinks=True)
    yield os.path.join(copy, 'bin', 'python')
    shutil.rmtree(workdir, ignore_errors=True)


def test_install_keeps_novas_packages(venv_copy):
    before = _freeze(venv_copy)
    assert 'nova' in before and 'shelve-lifecycle' not in before
    proc = subprocess.run(
        [venv_copy, '-m', 'pip', 'install', '-q', venv.REPO],
        capture_output=True, text=True, timeout=venv.PIP_TIMEOUT,
        env=venv.clean_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = _freeze(venv_copy)
    changed = {name: (version, after.get(name))
               for name, version in before.items()
               if after.get(name) != version}
    assert changed == {}, 'installing changed Nova packages: %s' % changed
    assert 'shelve-lifecycle' in after

    bindir = os.path.dirname(venv_copy)
    for script in ('lifecycle-nova-compute', 'lifecycle-manage'):
        assert os.path.exists(os.path.join(bindir, script)), script


def test_console_scripts_run_in_novas_venv(venv_copy):
    """After the install above (module-scoped venv copy): Nova's own
    nova-compute main behind lifecycle-nova-compute, and the nova category
    of lifecycle-manage."""
    bindir = os.path.dirname(venv_copy)
    if not os.path.exists(os.path.join(bindir, 'lifecycle-nova-compute')):
        pytest.fail('run test_install_keeps_novas_packages first (same '
                    'module): the project is not installed in the copy')
    env = venv.clean_env()
    # The copy's scripts carry the original venv's shebang: run them with
    # the copy's Python.
    proc = subprocess.run(
        [venv_copy, os.path.join(bindir, 'lifecycle-nova-compute'), '--help'],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '--config-file' in proc.stdout
    proc = subprocess.run(
        [venv_copy, os.path.join(bindir, 'lifecycle-manage'), 'nova',
         '--help'], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'shelved' in proc.stdout and 'disks' in proc.stdout
    proc = subprocess.run(
        [venv_copy, os.path.join(bindir, 'lifecycle-manage'), 'nova',
         'disks', 'cleanup'], capture_output=True, text=True, timeout=300,
        env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr


def test_manage_nova_without_nova_is_a_configuration_error():
    """In the service's own venv (no Nova): exit 2 and a message."""
    import sys
    proc = subprocess.run(
        [sys.executable, '-m', 'lifecycle.cmd.manage', 'nova', 'shelved',
         'list'], capture_output=True, text=True, timeout=120,
        cwd=venv.REPO)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot load Nova's configuration" in proc.stderr
