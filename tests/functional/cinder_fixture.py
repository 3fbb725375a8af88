"""A real Cinder (API, scheduler, volume service) for the functional tests.

``cinder`` (pinned: ``CINDER_VERSION``) and gunicorn live in a separate
virtualenv, built once under ``/var/tmp/lifecycle-cinder-venv/`` (keyed by
the pinned requirements and the Python version, like the Glance one of
glance_fixture.py) so they never leak into the service's environment.
``fixtures`` is pinned there too: Cinder's fake volume driver
(``cinder.tests.fake_driver``, shipped in the pip package) imports
``cinder.tests.unit``, which needs it.

:class:`CinderServer` runs that Cinder as a small deployment without
Keystone does:

* ``cinder.conf`` in a temporary directory: ``auth_strategy = noauth``,
  ``[database] connection`` on a SQLite file created by ``cinder-manage db
  sync``, ``enabled_backends = fake`` whose ``volume_driver`` is
  ``cinder.tests.fake_driver.FakeLoggingVolumeDriver`` (LVM's driver with
  every command faked: volumes exist in Cinder's database only, and
  ``initialize_connection`` returns an iSCSI connection without target);
* the WSGI application ``cinder.wsgi.api:application`` under gunicorn on
  127.0.0.1 and a free port. Cinder's ``initialize_application`` parses
  ``sys.argv``, which under gunicorn holds gunicorn's own arguments: a
  gunicorn config file's ``post_fork`` hook gives the worker
  ``cinder-api --config-file <cinder.conf>`` instead;
* ``cinder-scheduler`` and ``cinder-volume`` as processes of their own;
* three processes on one SQLite file. oslo.db starts SQLite transactions
  with a deferred ``BEGIN``: fine in one process, but across processes a
  transaction that has read and then writes while another process writes
  gets "database is locked" at once (SQLite's deadlock avoidance, which no
  busy timeout waits out), e.g. a volume create's quota reservation racing
  the volume service's delete of the previous volume. The harness therefore
  puts a ``sitecustomize.py`` on the Cinder processes' ``PYTHONPATH``
  (:data:`SQLITE_SHIM`) whose SQLAlchemy ``begin`` listener, which runs
  before oslo.db's, emits ``BEGIN IMMEDIATE`` for SQLite connections (and
  marks the transaction begun the way oslo.db does): writers queue on the
  60 s busy timeout instead of failing, as they would wait on row locks in
  a real database. Nothing else in Cinder changes. The file is also in WAL
  mode, so the tests' read-only look at it never blocks Cinder;
* RabbitMQ at 127.0.0.1:5672 (guest/guest) on a private vhost made for the
  session with ``rabbitmqctl add_vhost`` and removed afterwards: Cinder
  names its queues after fixed topics (``cinder-scheduler``,
  ``cinder-volume``), so two deployments on one vhost would consume each
  other's messages whatever their ``control_exchange``;
* ready when a probe volume becomes ``available`` (API, scheduler and
  volume service all answer).

Cinder's attachment delete asks Nova whether an attachment that has a
connection is still in use (bug #2004555) unless the request carries a
service token: through ``[nova] token_auth_url`` it gets a token and a
catalog from Keystone, then calls Nova's ``GET
/servers/{id}/os-volume_attachments/{volume}`` (2.89). Noauth has neither,
so :class:`~tests.functional.cinder_responder.NovaResponder` is a minimal
local responder for exactly that call: a Keystone token answer whose
catalog names itself as ``compute``, and the volume attachment answer,
which the test computes from the lifecycle service's database
(:attr:`NovaResponder.lookup`; by default "not found"). Cinder then deletes
the attachment when that answer names another attachment or none, and
refuses (409) when it names the one being deleted.

:meth:`CinderServer.attachment_row` reads an attachment's row from Cinder's
own database (the API does not show the connector).

Set ``LIFECYCLE_CINDER_PYTHON`` to a Python that already has cinder,
fixtures and gunicorn installed to skip the virtualenv build,
``LIFECYCLE_CINDER_VENV_ROOT`` to build it elsewhere. Under ``CI=true`` a
virtualenv that cannot be built or a Cinder that does not start fails the
tests (``tests.conftest.require``).
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
import uuid

import pytest
from oslo_config import cfg

from tests.conftest import require
from tests.harness import venvs
from tests.conftest import tcp_reachable
from tests.functional.cinder_responder import NovaResponder
from tests.functional.glance_fixture import free_port

# cinder 29.0.0 (2025.2) is the newest release; it installs on Python 3.11
# with SQLAlchemy 2.0 (oslo.db 18.x keeps SQLAlchemy below 2.1).
CINDER_VERSION = '29.0.0'
GUNICORN_VERSION = '27.0.1'
FIXTURES_VERSION = '4.3.2'
REQUIREMENTS = ('cinder==%s' % CINDER_VERSION,
                'gunicorn==%s' % GUNICORN_VERSION,
                'fixtures==%s' % FIXTURES_VERSION,
                'SQLAlchemy<2.1')

VENV_ROOT = os.environ.get('LIFECYCLE_CINDER_VENV_ROOT',
                           '/var/tmp/lifecycle-cinder-venv')
START_TIMEOUT = 180
STOP_TIMEOUT = 15
RABBIT_HOST, RABBIT_PORT = '127.0.0.1', 5672
FAKE_DRIVER = 'cinder.tests.fake_driver.FakeLoggingVolumeDriver'
RBD_DRIVER = 'cinder.volume.drivers.rbd.RBDDriver'
# Pool of the rbd backends in the session's Ceph cluster.
RBD_POOL = 'cinder-volumes'
# Debian's Ceph bindings (python3-rados, python3-rbd) for the Cinder
# processes: only these two modules, nothing else of Debian's Python.
CEPH_BINDINGS = ('rados', 'rbd')
DEBIAN_DIST_PACKAGES = '/usr/lib/python3/dist-packages'
# backend (= volume type) -> (driver, uses the Ceph pool)
BACKENDS = {
    'rbd': (RBD_DRIVER, True),
    'fake': (FAKE_DRIVER, False),
    'rbd-no-monitor': ('cinder_test_drivers.NoMonitorRBDDriver', True),
    'unknown-protocol': ('cinder_test_drivers.UnknownProtocolDriver', False),
}

# sitecustomize.py of the Cinder processes (see the module docstring).
SQLITE_SHIM = '''\
"""shelve-lifecycle test harness: SQLite transactions of Cinder's
processes begin with BEGIN IMMEDIATE (oslo.db emits a deferred BEGIN).

Nothing is imported here: Cinder monkey-patches with eventlet first thing,
so the listener is registered once Cinder itself imports sqlalchemy.engine.
"""
import sys


def _register():
    # (sqlalchemy itself is still importing: submodules only)
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.sql.expression import text

    @event.listens_for(Engine, 'begin')
    def _begin_immediate(conn):
        # Class-level listeners run before oslo.db's per-engine one, which
        # skips its own BEGIN when 'in_transaction' is set (and clears it
        # at commit or rollback).
        if (conn.engine.dialect.name == 'sqlite' and
                'in_transaction' not in conn.info):
            conn.execute(text('BEGIN IMMEDIATE'))
            conn.info['in_transaction'] = True


class _AfterSqlalchemyEngine:
    def find_spec(self, name, path=None, target=None):
        if name != 'sqlalchemy.engine':
            return None
        sys.meta_path.remove(self)
        import importlib.util
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register()
        spec.loader.exec_module = exec_then_register
        return spec


sys.meta_path.insert(0, _AfterSqlalchemyEngine())
'''


# ``ceph`` for the Cinder processes (first on their PATH): the real one,
# asked again when the single test monitor refuses a command with "problem
# getting command descriptions" (EPERM; with auth none it does so now and
# then, ~2% of ``ceph mon dump`` calls here -- the command did not run).
# Cinder's RBD driver runs ``ceph mon dump`` on every initialize_connection
# and does not retry.
CEPH_RETRY_WRAPPER = '''\
#!/bin/sh
# shelve-lifecycle test harness: see cinder_fixture.CEPH_RETRY_WRAPPER.
n=0
while :; do
    err=$(mktemp)
    out=$(/usr/bin/ceph "$@" 2>"$err")
    rc=$?
    if [ $rc -ne 0 ] && [ $n -lt 20 ] && \\
            grep -q 'problem getting command descriptions' "$err"; then
        rm -f "$err"; n=$((n + 1)); sleep 0.1; continue
    fi
    cat "$err" >&2; rm -f "$err"
    [ -n "$out" ] && printf '%s\\n' "$out"
    exit $rc
done
'''


def build_venv() -> tuple[str | None, str | None]:
    """(python of the Cinder virtualenv, None) or (None, why not); built
    once (tests/harness/venvs.py)."""
    key = venvs.requirements_key('cinder', CINDER_VERSION,
                                 REQUIREMENTS)
    return venvs.build_venv(VENV_ROOT, key, REQUIREMENTS)


# -- RabbitMQ ----------------------------------------------------------------

class RabbitVhost:
    """A private vhost on the local RabbitMQ, for one session."""

    def __init__(self) -> None:
        self.name = 'lifecycle-cinder-%s' % uuid.uuid4().hex[:10]
        self.created = False

    @staticmethod
    def _ctl(*args: str) -> tuple[bool, str]:
        try:
            proc = subprocess.run(['rabbitmqctl', *args], capture_output=True,
                                  text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, str(exc)
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def create(self) -> tuple[bool, str]:
        ok, out = self._ctl('add_vhost', self.name)
        if not ok:
            return False, out
        self.created = True
        return self._ctl('set_permissions', '-p', self.name, 'guest',
                         '.*', '.*', '.*')

    @property
    def url(self) -> str:
        return 'rabbit://guest:guest@%s:%d/%s' % (RABBIT_HOST, RABBIT_PORT,
                                                  self.name)

    def delete(self) -> None:
        if self.created:
            self._ctl('delete_vhost', self.name)
            self.created = False


# -- Cinder ------------------------------------------------------------------

class CinderServer:
    """cinder-api (gunicorn), cinder-scheduler and cinder-volume."""

    def __init__(self, python: str, workdir: str, transport_url: str,
                 nova: NovaResponder, ceph=None,
                 glance_url: str | None = None) -> None:
        self.ceph = ceph
        self.glance_url = glance_url
        self.python = python
        self.bindir = os.path.dirname(python)
        self.workdir = workdir
        self.conf_dir = os.path.join(workdir, 'etc')
        self.conf_file = os.path.join(self.conf_dir, 'cinder.conf')
        self.log_dir = os.path.join(workdir, 'log')
        self.db_path = os.path.join(workdir, 'cinder.sqlite')
        self.transport_url = transport_url
        self.nova = nova
        self.port = free_port()
        # Unversioned: see lifecycle/conf/cinder.py for why no project id.
        self.endpoint = 'http://127.0.0.1:%d/v3' % self.port
        self.host = 'lifecycle-cinder-%s' % uuid.uuid4().hex[:6]
        self.procs: dict[str, subprocess.Popen] = {}
        self.start_seconds: float | None = None

    # -- set-up --------------------------------------------------------------

    def _prefix(self) -> str:
        return subprocess.run(
            [self.python, '-c', 'import sys; print(sys.prefix)'],
            capture_output=True, text=True, check=True).stdout.strip()

    def _pythonpath(self) -> list[str]:
        return [os.path.join(self.workdir, 'shim'),
                os.path.join(self.workdir, 'ceph-bindings')]

    def _link_ceph_bindings(self) -> None:
        """Debian's ``rados`` and ``rbd`` extension modules (built for
        /usr/bin/python3, the interpreter of Cinder's virtualenv) in a
        directory of their own: Cinder sees them and nothing else of
        Debian's dist-packages, so none of its pip-installed dependencies
        is shadowed (neither module is on PyPI or among Cinder's
        requirements)."""
        target = os.path.join(self.workdir, 'ceph-bindings')
        os.makedirs(target, exist_ok=True)
        for name in sorted(os.listdir(DEBIAN_DIST_PACKAGES)):
            module = name.split('.', 1)[0]
            if module in CEPH_BINDINGS and name.endswith('.so'):
                os.symlink(os.path.join(DEBIAN_DIST_PACKAGES, name),
                           os.path.join(target, name))

    def _backend_sections(self) -> str:
        sections = []
        for backend, (driver, on_ceph) in self.backends().items():
            lines = ['[%s]' % backend, 'volume_driver = %s' % driver,
                     'volume_backend_name = %s' % backend]
            if on_ceph:
                lines += ['rbd_ceph_conf = %s' % self.ceph.conf,
                          'rbd_pool = %s' % RBD_POOL,
                          # No cephx in the test cluster: no rbd_user, so
                          # connections say auth_enabled false.
                          'rbd_exclusive_cinder_pool = true']
            sections.append('\n'.join(lines) + '\n')
        return '\n'.join(sections)

    @property
    def default_volume_type(self) -> str:
        return 'rbd' if self.ceph is not None else 'fake'

    def backends(self) -> dict:
        """The backends this deployment runs (all of :data:`BACKENDS`
        with a Ceph cluster, only the fake ones without)."""
        return {name: spec for name, spec in BACKENDS.items()
                if self.ceph is not None or not spec[1]}

    def configure(self) -> None:
        for name in ('etc', 'log', 'state', 'volumes', 'lock', 'coord',
                     'shim', 'conversion'):
            os.makedirs(os.path.join(self.workdir, name), exist_ok=True)
        with open(os.path.join(self.workdir, 'shim', 'sitecustomize.py'),
                  'w') as f:
            f.write(SQLITE_SHIM)
        shutil.copyfile(os.path.join(os.path.dirname(__file__),
                                     'cinder_test_drivers.py'),
                        os.path.join(self.workdir, 'shim',
                                     'cinder_test_drivers.py'))
        if self.ceph is not None:
            self._link_ceph_bindings()
            os.makedirs(os.path.join(self.workdir, 'bin'), exist_ok=True)
            wrapper = os.path.join(self.workdir, 'bin', 'ceph')
            with open(wrapper, 'w') as f:
                f.write(CEPH_RETRY_WRAPPER)
            os.chmod(wrapper, 0o755)
            self.ceph.create_pool(RBD_POOL)
        paste = os.path.join(self.conf_dir, 'api-paste.ini')
        shutil.copyfile(os.path.join(self._prefix(), 'etc', 'cinder',
                                     'api-paste.ini'), paste)
        w = self.workdir
        conf = textwrap.dedent("""\
            [DEFAULT]
            auth_strategy = noauth
            transport_url = {transport}
            control_exchange = cinder
            host = {host}
            my_ip = 127.0.0.1
            state_path = {w}/state
            volumes_dir = {w}/volumes
            api_paste_config = {paste}
            log_dir = {w}/log
            debug = false
            enabled_backends = {backends}
            default_volume_type = {default_type}
            glance_api_servers = {glance}
            image_conversion_dir = {w}/conversion
            # The volume service publishes its capabilities to the
            # scheduler every periodic_interval: a scheduler that missed
            # the first publication learns of the backend this soon.
            report_interval = 5
            periodic_interval = 5
            service_down_time = 60
            scheduler_driver_init_wait_time = 10

            [database]
            connection = sqlite:///{db}?timeout=60

            [oslo_concurrency]
            lock_path = {w}/lock

            [coordination]
            backend_url = file://{w}/coord

            [nova]
            token_auth_url = {identity}
            interface = public

            # Cinder's own privsep daemons (its os-brick calls, its
            # sys_admin context): privsep-helper of its virtualenv, which
            # sudo's secure_path would not find; the harness runs as root.
            [privsep_osbrick]
            helper_command = {helper} --config-file {conf}

            [cinder_sys_admin]
            helper_command = {helper} --config-file {conf}

            """).format(transport=self.transport_url, host=self.host, w=w,
                        paste=paste, db=self.db_path,
                        identity=self.nova.identity_url,
                        backends=','.join(self.backends()),
                        default_type=self.default_volume_type,
                        glance=self.glance_url or '',
                        helper=os.path.join(self.bindir, 'privsep-helper'),
                        conf=self.conf_file)
        conf += self._backend_sections()
        with open(self.conf_file, 'w') as f:
            f.write(conf)
        with open(os.path.join(self.conf_dir, 'gunicorn_conf.py'), 'w') as f:
            f.write(textwrap.dedent("""\
                import sys


                def post_fork(server, worker):
                    # cinder.wsgi.wsgi.initialize_application parses
                    # sys.argv; give it cinder's arguments, not gunicorn's.
                    sys.argv[:] = ['cinder-api', '--config-file', {conf!r}]
                """).format(conf=self.conf_file))

    def db_sync(self) -> None:
        proc = subprocess.run(
            [os.path.join(self.bindir, 'cinder-manage'), '--config-file',
             self.conf_file, 'db', 'sync'],
            capture_output=True, text=True, timeout=300)
        if proc.returncode:
            raise RuntimeError('cinder-manage db sync failed:\n%s'
                               % (proc.stdout + proc.stderr)[-3000:])
        db = sqlite3.connect(self.db_path)
        try:
            # Persistent in the file: every Cinder process gets it.
            mode = db.execute('PRAGMA journal_mode=WAL').fetchone()[0]
        finally:
            db.close()
        assert mode == 'wal', mode

    # -- processes -----------------------------------------------------------

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(('PYTHON', 'OS_'))}
        env.update(PYTHONNOUSERSITE='1', PYTHONWARNINGS='ignore',
                   PYTHONPATH=os.pathsep.join(self._pythonpath()),
                   PATH=os.pathsep.join([os.path.join(self.workdir, 'bin'),
                                         env.get('PATH', os.defpath)]))
        return env

    def _spawn(self, name: str, cmd: list[str]) -> None:
        env = self._env()
        with open(os.path.join(self.log_dir, '%s.out' % name), 'ab') as log:
            # Its own session (process group): stop() reaches its children.
            self.procs[name] = subprocess.Popen(
                cmd, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        started = time.monotonic()
        self._spawn('cinder-api', [
            os.path.join(self.bindir, 'gunicorn'), '--no-control-socket',
            '-c', os.path.join(self.conf_dir, 'gunicorn_conf.py'),
            '--bind', '127.0.0.1:%d' % self.port, '--workers', '1',
            '--worker-class', 'gthread', '--threads', '8', '--timeout', '300',
            '--access-logfile', os.path.join(self.log_dir, 'access.log'),
            'cinder.wsgi.api:application'])
        for name in ('cinder-scheduler', 'cinder-volume'):
            self._spawn(name, [os.path.join(self.bindir, name),
                               '--config-file', self.conf_file])
        deadline = started + timeout
        while not self._api_answers():
            self._check_alive(deadline, 'API at %s' % self.endpoint)
            time.sleep(0.2)
        self._volume_types()
        for backend in self.backends():
            self._probe_volume(deadline, backend)
        self.start_seconds = time.monotonic() - started

    def _check_alive(self, deadline: float, what: str) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError('%s exited with %s:\n%s' % (
                    name, proc.returncode, self.log_tail()))
        if time.monotonic() > deadline:
            raise RuntimeError('Cinder (%s) not ready in time:\n%s'
                               % (what, self.log_tail()))

    def _api_answers(self) -> bool:
        try:
            with urllib.request.urlopen('http://127.0.0.1:%d/' % self.port,
                                        timeout=2) as resp:
                return resp.status in (200, 300)
        except urllib.error.HTTPError as e:
            return e.code == 300
        except OSError:
            return False

    def _volume_types(self) -> None:
        """One volume type per backend, named after it (noauth requests
        are admin ones)."""
        client = self.client()
        existing = {t.name for t in client.volume_types.list()}
        for backend in self.backends():
            if backend not in existing:
                vtype = client.volume_types.create(backend)
                vtype.set_keys({'volume_backend_name': backend})

    def _probe_volume(self, deadline: float, backend: str) -> None:
        """A volume of ``backend`` goes through API, scheduler and its
        volume service."""
        client = self.client()
        while True:
            probe = client.volumes.create(1, name='lifecycle-probe',
                                          volume_type=backend)
            while True:
                status = client.volumes.get(probe.id).status
                if status != 'creating':
                    break
                self._check_alive(deadline, 'probe volume')
                time.sleep(0.2)
            client.volumes.delete(probe.id)
            if status == 'available':
                return
            # The scheduler has not heard of the volume service yet.
            self._check_alive(deadline, 'probe volume %s' % status)
            time.sleep(1)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                self._signal(proc, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left of the group (gunicorn's worker, eventlet
            # children) goes too.
            self._signal(proc, signal.SIGKILL)
            proc.wait(timeout=30)

    @staticmethod
    def _signal(proc: subprocess.Popen, signum: int) -> None:
        try:
            os.killpg(proc.pid, signum)  # the group we started
        except ProcessLookupError:
            pass

    # -- operator steps ------------------------------------------------------

    def backend_host(self, backend: str) -> str:
        """Cinder's ``host@backend#pool`` of ``backend`` (its pool is named
        after the backend)."""
        return '%s@%s#%s' % (self.host, backend, backend)

    def update_host(self, current: str, new: str) -> None:
        """``cinder-manage volume update_host``: every volume of backend
        ``current`` now belongs to backend ``new`` (the operator's step
        after renaming a backend; both are ``host@backend#pool``)."""
        proc = subprocess.run(
            [os.path.join(self.bindir, 'cinder-manage'), '--config-file',
             self.conf_file, 'volume', 'update_host', '--currenthost',
             current, '--newhost', new],
            capture_output=True, text=True, timeout=120, env=self._env(),
            cwd=self.workdir)
        if proc.returncode:
            raise RuntimeError('cinder-manage volume update_host failed:\n%s'
                               % (proc.stdout + proc.stderr)[-3000:])

    # -- inspection ----------------------------------------------------------

    def client(self):
        """A python-cinderclient v3 (3.44) client, noauth, as the service's
        own ``[cinder]`` options build it."""
        from lifecycle.volume import cinder
        return cinder.CinderAPI(self.make_conf())._client()

    def make_conf(self) -> cfg.ConfigOpts:
        from lifecycle import conf as lifecycle_conf

        conf = cfg.ConfigOpts()
        lifecycle_conf.register_all(conf)
        conf([], project='lifecycle', default_config_files=[])
        for name, value in self.overrides().items():
            conf.set_override(name[1], value, group=name[0])
        return conf

    def overrides(self) -> dict:
        """``{(group, option): value}`` for an all-in-one on this Cinder."""
        return {('cinder', 'auth_type'): 'none',
                ('cinder', 'endpoint_override'): self.endpoint,
                ('cinder', 'http_retries'): 0}

    def attachment_row(self, attachment_id: str) -> dict | None:
        """Cinder's own record of an attachment (the API shows no
        connector): status, host, connector (decoded), deleted."""
        db = sqlite3.connect('file:%s?mode=ro' % self.db_path, uri=True,
                             timeout=30)
        try:
            row = db.execute(
                'SELECT attach_status, attached_host, connector, deleted '
                'FROM volume_attachment WHERE id = ?',
                (attachment_id,)).fetchone()
        finally:
            db.close()
        if row is None:
            return None
        return {'attach_status': row[0], 'attached_host': row[1],
                'connector': json.loads(row[2]) if row[2] else None,
                'deleted': bool(row[3])}

    def attachment_ids(self, volume_id: str) -> list[str]:
        """Every attachment the volume ever had, deleted ones included,
        oldest first (Cinder's own rows)."""
        db = sqlite3.connect('file:%s?mode=ro' % self.db_path, uri=True,
                             timeout=30)
        try:
            rows = db.execute(
                'SELECT id FROM volume_attachment WHERE volume_id = ? '
                'ORDER BY created_at, id', (volume_id,)).fetchall()
        finally:
            db.close()
        return [row[0] for row in rows]

    @staticmethod
    def rbd_image(volume_id: str) -> str:
        """The RBD image of a volume of the rbd backends (Cinder's
        ``volume_name_template``)."""
        return 'volume-%s' % volume_id

    def pool_images(self) -> list[str]:
        return self.ceph.images(RBD_POOL)

    def log_tail(self, chars: int = 4000) -> str:
        out = []
        try:
            names = sorted(os.listdir(self.log_dir))
        except FileNotFoundError:
            names = []
        for name in names:
            path = os.path.join(self.log_dir, name)
            with open(path, errors='replace') as f:
                text = f.read()
            if text.strip():
                out.append('== %s ==\n%s' % (path, text[-chars:]))
        return '\n'.join(out)


class _LogsOnFailure:
    """A pytest plugin for the session: a failed test that used the Cinder
    fixture gets Cinder's log tails in its report."""

    def __init__(self, server: CinderServer) -> None:
        self.server = server

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.failed and 'cinder_server' in getattr(item, 'fixturenames',
                                                        ()):
            report.sections.append(('Cinder logs', self.server.log_tail()))


@pytest.fixture(scope='session')
def cinder_server(tmp_path_factory, request, ceph_cluster, glance_server):
    """A running :class:`CinderServer` for the whole session, its RBD
    backends on the session's Ceph cluster, images from its Glance."""
    python = os.environ.get('LIFECYCLE_CINDER_PYTHON')
    if not python:
        python, reason = build_venv()
        require(python is not None,
                'a virtualenv with cinder==%s (%s)' % (CINDER_VERSION,
                                                       reason))
    require(tcp_reachable(RABBIT_HOST, RABBIT_PORT),
            'RabbitMQ at %s:%d' % (RABBIT_HOST, RABBIT_PORT))
    vhost = RabbitVhost()
    nova = NovaResponder()
    server = None
    plugin = None
    try:
        ok, out = vhost.create()
        require(ok, 'a private RabbitMQ vhost for Cinder (rabbitmqctl '
                'add_vhost: %s)' % out)
        nova.start()
        if not glance_server.running:
            glance_server.restart()
        server = CinderServer(python, str(tmp_path_factory.mktemp('cinder')),
                              vhost.url, nova, ceph=ceph_cluster,
                              glance_url=glance_server.endpoint)
        plugin = _LogsOnFailure(server)
        request.config.pluginmanager.register(plugin)
        server.configure()
        server.db_sync()
        try:
            server.start()
        except RuntimeError as e:
            pytest.fail('Cinder did not start: %s' % e, pytrace=False)
        yield server
    finally:
        if server is not None:
            server.stop()
        if plugin is not None:
            request.config.pluginmanager.unregister(plugin)
        if nova.thread.is_alive():
            nova.stop()
        vhost.delete()
