"""A real Glance API for the functional tests.

``glance`` (pinned: ``GLANCE_VERSION``) and gunicorn live in a separate
virtualenv, built once under ``/var/tmp/lifecycle-glance-venv/`` (keyed by the
pinned requirements and the Python version, like the Nova one of
test_nova_filter_loader.py) so they never leak into the service's
environment.

:class:`GlanceServer` configures and runs that Glance the way a small
deployment without Keystone does:

* ``glance-api.conf`` in a temporary directory (found through
  ``OS_GLANCE_CONFIG_DIR``): ``[paste_deploy] flavor`` empty, i.e. the
  ``glance-api`` pipeline of the release's own ``glance-api-paste.ini`` with
  ``unauthenticated-context`` and no ``authtoken``; the Keystone-less context
  carries no roles, so ``[oslo_policy] enforce_new_defaults = false`` lets
  the (deprecated, still shipped) legacy rules allow it;
* ``[database] connection`` on a SQLite file, created by ``glance-manage
  db_sync``;
* a file store through the multi-store options (``enabled_backends =
  fs:file``, ``[glance_store] default_backend = fs``, ``[fs]
  filesystem_store_datadir``; the single-store ``stores`` and
  ``default_store`` are deprecated since Rocky), plus the reserved staging
  and tasks stores in the same directory;
* the WSGI application ``glance.wsgi.api:application`` under gunicorn
  (``--no-control-socket``, threaded worker) on 127.0.0.1 and a free port,
  ready when ``GET /versions`` answers. Its access log counts the requests
  that served image data (:meth:`GlanceServer.data_requests`).

:meth:`GlanceServer.kill` (SIGKILL to gunicorn and its worker) and
:meth:`GlanceServer.restart` (same port, same database and store) let a test
interrupt Glance, e.g. in the middle of an upload.

The session fixture is tests/functional/glance_fixture.py's; import it into
a test module with ``glance_server = glance_fixture.glance_server`` (an
assignment, not an import of the name, so that the test functions' argument
does not shadow an import).

Set ``LIFECYCLE_GLANCE_PYTHON`` to a Python that already has glance and
gunicorn installed to skip the virtualenv build, ``LIFECYCLE_GLANCE_VENV_ROOT``
to build it elsewhere. Under ``CI=true`` a virtualenv that cannot be built
fails the tests (``tests.conftest.require``).
"""

import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.request

from oslo_config import cfg

from tests.harness import venvs

# glance 33.0.0 is the newest release; it needs Python >= 3.11 and installs
# with SQLAlchemy 2.0 (oslo.db 18.x keeps SQLAlchemy below 2.1).
GLANCE_VERSION = '33.0.0'
GUNICORN_VERSION = '27.0.1'
REQUIREMENTS = ('glance==%s' % GLANCE_VERSION,
                'gunicorn==%s' % GUNICORN_VERSION,
                'SQLAlchemy<2.1',
                # For a Glance on PostgreSQL (the benchmark's, see
                # GlanceServer's ``database``).
                'psycopg2-binary==2.9.13')

VENV_ROOT = os.environ.get('LIFECYCLE_GLANCE_VENV_ROOT',
                           '/var/tmp/lifecycle-glance-venv')
START_TIMEOUT = 90


def build_venv() -> tuple[str | None, str | None]:
    """(python of the Glance virtualenv, None) or (None, why not); built
    once (tests/harness/venvs.py)."""
    key = venvs.requirements_key('glance', GLANCE_VERSION,
                                 REQUIREMENTS)
    return venvs.build_venv(VENV_ROOT, key, REQUIREMENTS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class GlanceServer:
    """One Glance API process tree (gunicorn master + worker)."""

    def __init__(self, python: str, workdir: str,
                 database: str | None = None) -> None:
        """``database``: Glance's ``[database] connection`` (default a
        SQLite file in ``workdir``: enough for the tests, but its single
        write lock fails uploads run several at once with 'database is
        locked')."""
        self.python = python
        self.database = database or 'sqlite:///%s/glance.sqlite' % workdir
        self.bindir = os.path.dirname(python)
        self.workdir = workdir
        self.conf_dir = os.path.join(workdir, 'etc')
        self.store_dir = os.path.join(workdir, 'images')
        self.log_file = os.path.join(workdir, 'glance-api.log')
        self.server_log = os.path.join(workdir, 'gunicorn.log')
        self.access_log = os.path.join(workdir, 'access.log')
        self.port = free_port()
        self.endpoint = 'http://127.0.0.1:%d' % self.port
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None

    # -- set-up --------------------------------------------------------------

    def _paste_ini(self) -> str:
        """The release's own glance-api-paste.ini (installed in
        ``<prefix>/etc/glance``)."""
        prefix = subprocess.run(
            [self.python, '-c', 'import sys; print(sys.prefix)'],
            capture_output=True, text=True, check=True).stdout.strip()
        return os.path.join(prefix, 'etc', 'glance', 'glance-api-paste.ini')

    def configure(self) -> None:
        for name in ('etc', 'images', 'staging', 'tasks', 'lock'):
            os.makedirs(os.path.join(self.workdir, name), exist_ok=True)
        paste = os.path.join(self.conf_dir, 'glance-api-paste.ini')
        shutil.copyfile(self._paste_ini(), paste)
        w = self.workdir
        conf = textwrap.dedent("""\
            [DEFAULT]
            enabled_backends = fs:file
            log_file = {w}/glance-api.log
            lock_path = {w}/lock
            image_cache_dir = {w}/cache

            [database]
            connection = {database}

            [paste_deploy]
            flavor =
            config_file = {paste}

            [oslo_policy]
            enforce_new_defaults = false
            enforce_scope = false

            [glance_store]
            default_backend = fs

            [fs]
            filesystem_store_datadir = {w}/images

            [os_glance_staging_store]
            filesystem_store_datadir = {w}/staging

            [os_glance_tasks_store]
            filesystem_store_datadir = {w}/tasks
            """).format(w=w, paste=paste, database=self.database)
        with open(os.path.join(self.conf_dir, 'glance-api.conf'), 'w') as f:
            f.write(conf)

    def db_sync(self) -> None:
        proc = subprocess.run(
            [os.path.join(self.bindir, 'glance-manage'), '--config-file',
             os.path.join(self.conf_dir, 'glance-api.conf'), 'db_sync'],
            capture_output=True, text=True, timeout=300)
        if proc.returncode:
            raise RuntimeError('glance-manage db_sync failed:\n%s'
                               % (proc.stdout + proc.stderr)[-3000:])

    # -- process -------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start gunicorn and wait until ``GET /versions`` answers."""
        assert not self.running, 'Glance is already running'
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(('PYTHON', 'OS_'))}
        env.update(OS_GLANCE_CONFIG_DIR=self.conf_dir, PYTHONNOUSERSITE='1',
                   PYTHONWARNINGS='ignore')
        cmd = [os.path.join(self.bindir, 'gunicorn'), '--no-control-socket',
               '--bind', '127.0.0.1:%d' % self.port,
               '--workers', '1', '--worker-class', 'gthread',
               '--threads', '8', '--timeout', '600',
               '--access-logfile', self.access_log,
               'glance.wsgi.api:application']
        started = time.monotonic()
        with open(self.server_log, 'ab') as log:
            # Its own session (process group): kill() reaches the worker.
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = started + timeout
        while True:
            if not self.running:
                raise RuntimeError('Glance exited with %s:\n%s'
                                   % (self.proc.returncode, self.log_tail()))
            if self._versions_ok():
                break
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError('Glance did not answer at %s within %d '
                                   's:\n%s' % (self.endpoint, timeout,
                                               self.log_tail()))
            time.sleep(0.2)
        self.start_seconds = time.monotonic() - started

    def _versions_ok(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + '/versions',
                                        timeout=2) as resp:
                return resp.status in (200, 300)
        except urllib.error.HTTPError as e:
            return e.code == 300
        except OSError:
            return False

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)  # the group we started
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL to gunicorn and its worker, as a crash would."""
        if self.proc is None:
            return
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if not self.running:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        else:
            self._signal(signal.SIGKILL)  # a worker left behind, if any

    def restart(self) -> None:
        """Start again on the same port, database and store."""
        self.kill()
        self.start()

    # -- inspection ----------------------------------------------------------

    def store_path(self, image_id: str) -> str:
        """The file store's data file of ``image_id``."""
        return os.path.join(self.store_dir, image_id)

    def data_requests(self, image_id: str) -> int:
        """How many ``GET /v2/images/<id>/file`` Glance has served."""
        needle = '"GET /v2/images/%s/file ' % image_id
        try:
            with open(self.access_log) as f:
                return sum(1 for line in f if needle in line)
        except FileNotFoundError:
            return 0

    def log_tail(self, chars: int = 4000) -> str:
        out = []
        for path in (self.server_log, self.log_file):
            try:
                with open(path, errors='replace') as f:
                    out.append('== %s ==\n%s' % (path, f.read()[-chars:]))
            except FileNotFoundError:
                pass
        return '\n'.join(out)


def make_conf(endpoint: str, **glance_overrides) -> cfg.ConfigOpts:
    """A private ConfigOpts with every project option and ``[glance]`` set
    for a Keystone-less Glance at ``endpoint``."""
    from lifecycle import conf as lifecycle_conf

    conf = cfg.ConfigOpts()
    lifecycle_conf.register_all(conf)
    conf([], project='lifecycle', default_config_files=[])
    overrides = {'auth_type': 'none', 'endpoint_override': endpoint,
                 'num_retries': 0, 'transfer_log_interval': 1}
    overrides.update(glance_overrides)
    for name, value in overrides.items():
        conf.set_override(name, value, group='glance')
    conf.set_override('source', 'glance', group='image')
    return conf
