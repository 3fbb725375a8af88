"""A real Keystone for the functional tests.

``keystone`` (pinned: ``KEYSTONE_VERSION``) and gunicorn live in their own
virtualenv under ``/var/tmp/lifecycle-keystone-venv/`` (tests/functional/
venvs.py builds it once, under a file lock). :class:`KeystoneServer` runs it
as a small deployment does:

* ``keystone.conf`` in a temporary directory (``OS_KEYSTONE_CONFIG_DIR``):
  a fresh MariaDB database (127.0.0.1:3306, dropped afterwards; on SQLite
  Keystone's concurrent requests fail with "database is locked"), fernet
  tokens and credential keys in the directory;
* ``keystone-manage db_sync``, ``fernet_setup``, ``credential_setup`` and
  ``bootstrap`` (user ``admin`` with role ``admin`` on project ``admin``,
  the identity endpoint in region ``RegionOne``);
* ``keystone.wsgi.api:application`` under gunicorn on 127.0.0.1 and a free
  port, ready when ``GET /v3`` answers (a gunicorn ``post_fork`` hook
  replaces ``sys.argv``, which Keystone parses, as the Cinder fixture does).

:func:`keystone` (session fixture) adds what the tests need, through the
identity API as the admin: projects ``project-a`` and ``project-b`` with a
member each (``member-a``, ``member-b``: roles ``member`` and ``reader``),
and the service user ``lifecycle`` (role ``service`` and ``admin`` on
project ``service``) that the API's auth_token middleware uses.

Set ``LIFECYCLE_KEYSTONE_PYTHON`` to a Python that already has keystone and
gunicorn to skip the virtualenv build, ``LIFECYCLE_KEYSTONE_VENV_ROOT`` to
build it elsewhere. Under ``CI=true`` a virtualenv that cannot be built or a
Keystone that does not start fails the tests (``tests.conftest.require``).
"""

import dataclasses
import os
import signal
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.conftest import require
from tests.harness import venvs
from tests.functional.glance_fixture import free_port

# keystone 28.0.0 is the 2025.2 release, the one of the Cinder (29.0.0)
# used by the tests; it installs with SQLAlchemy 2.0.
KEYSTONE_VERSION = '28.0.0'
GUNICORN_VERSION = '27.0.1'
REQUIREMENTS = ('keystone==%s' % KEYSTONE_VERSION,
                'gunicorn==%s' % GUNICORN_VERSION,
                'SQLAlchemy<2.1', 'PyMySQL==1.2.4')
VENV_ROOT = os.environ.get('LIFECYCLE_KEYSTONE_VENV_ROOT',
                           '/var/tmp/lifecycle-keystone-venv')
START_TIMEOUT = 120
ADMIN_PASSWORD = 'admin-secret'
PASSWORD = 'member-secret'
SERVICE_PASSWORD = 'service-secret'
REGION = 'RegionOne'


def build_venv() -> tuple[str | None, str | None]:
    return venvs.build_venv(
        VENV_ROOT, venvs.requirements_key('keystone', KEYSTONE_VERSION,
                                          REQUIREMENTS), REQUIREMENTS)


class KeystoneServer:
    """One Keystone (gunicorn master and worker) on MariaDB."""

    def __init__(self, python: str, workdir: str) -> None:
        self.python = python
        self.bindir = os.path.dirname(python)
        self.workdir = workdir
        self.conf_dir = os.path.join(workdir, 'etc')
        self.log_file = os.path.join(workdir, 'keystone.log')
        self.server_log = os.path.join(workdir, 'gunicorn.log')
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.auth_url = self.url + '/v3'
        self.proc: subprocess.Popen | None = None

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(('PYTHON', 'OS_'))}
        env.update(OS_KEYSTONE_CONFIG_DIR=self.conf_dir,
                   PYTHONNOUSERSITE='1', PYTHONWARNINGS='ignore')
        return env

    def _manage(self, *args: str) -> None:
        proc = subprocess.run(
            [os.path.join(self.bindir, 'keystone-manage'), '--config-file',
             os.path.join(self.conf_dir, 'keystone.conf'), *args],
            capture_output=True, text=True, timeout=300, env=self._env())
        if proc.returncode:
            raise RuntimeError('keystone-manage %s failed:\n%s' % (
                ' '.join(args), (proc.stdout + proc.stderr)[-3000:]))

    def configure(self) -> None:
        w = self.workdir
        for name in ('etc', 'fernet-keys', 'credential-keys', 'site'):
            os.makedirs(os.path.join(w, name), mode=0o700, exist_ok=True)
        self.database = 'lifecycle_keystone_%s' % uuid.uuid4().hex[:12]
        _mysql('CREATE DATABASE %s' % self.database)
        conf = textwrap.dedent("""\
            [DEFAULT]
            log_file = {w}/keystone.log

            [database]
            connection = mysql+pymysql://root@127.0.0.1:3306/{db}

            [token]
            provider = fernet
            expiration = 3600

            [fernet_tokens]
            key_repository = {w}/fernet-keys

            [credential]
            key_repository = {w}/credential-keys
            """).format(w=w, db=self.database)
        with open(os.path.join(self.conf_dir, 'keystone.conf'), 'w') as f:
            f.write(conf)
        with open(os.path.join(self.conf_dir, 'gunicorn.conf.py'), 'w') as f:
            f.write(textwrap.dedent("""\
                import sys


                def post_fork(server, worker):
                    # Keystone's initialize_application parses sys.argv:
                    # give it keystone's arguments, not gunicorn's.
                    sys.argv[:] = ['keystone-wsgi-public']
                """))
        self._manage('db_sync')
        user = str(os.getuid())
        group = str(os.getgid())
        self._manage('fernet_setup', '--keystone-user', user,
                     '--keystone-group', group)
        self._manage('credential_setup', '--keystone-user', user,
                     '--keystone-group', group)
        self._manage('bootstrap', '--bootstrap-password', ADMIN_PASSWORD,
                     '--bootstrap-admin-url', self.auth_url,
                     '--bootstrap-internal-url', self.auth_url,
                     '--bootstrap-public-url', self.auth_url,
                     '--bootstrap-region-id', REGION)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        cmd = [os.path.join(self.bindir, 'gunicorn'), '--no-control-socket',
               '--config', os.path.join(self.conf_dir, 'gunicorn.conf.py'),
               '--bind', '127.0.0.1:%d' % self.port, '--workers', '1',
               '--worker-class', 'gthread', '--threads', '4',
               '--timeout', '120', 'keystone.wsgi.api:application']
        with open(self.server_log, 'ab') as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=self._env(),
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if not self.running:
                raise RuntimeError('Keystone exited with %s:\n%s' % (
                    self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('Keystone did not answer within %d s:\n%s'
                                   % (timeout, self.log_tail()))
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.auth_url, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass

    def drop_database(self) -> None:
        if getattr(self, 'database', None):
            _mysql('DROP DATABASE IF EXISTS %s' % self.database)

    def log_tail(self, chars: int = 4000) -> str:
        out = []
        for path in (self.server_log, self.log_file):
            try:
                with open(path, errors='replace') as f:
                    out.append('== %s ==\n%s' % (path, f.read()[-chars:]))
            except FileNotFoundError:
                pass
        return '\n'.join(out)


@dataclasses.dataclass
class Cloud:
    """The Keystone the tests use and who is in it."""
    server: KeystoneServer
    auth_url: str
    project_ids: dict[str, str]
    user_ids: dict[str, str]

    def credentials(self, user: str) -> dict:
        """openstacksdk ``auth`` for ``member-a``, ``member-b``, ``admin``
        or ``lifecycle``."""
        project = {'member-a': 'project-a', 'member-b': 'project-b',
                   'admin': 'admin', 'lifecycle': 'service'}[user]
        password = {'admin': ADMIN_PASSWORD,
                    'lifecycle': SERVICE_PASSWORD}.get(user, PASSWORD)
        return {'auth_url': self.auth_url, 'username': user,
                'password': password, 'project_name': project,
                'user_domain_name': 'Default',
                'project_domain_name': 'Default'}

    def connect(self, user: str, **kwargs):
        import openstack
        return openstack.connect(auth=self.credentials(user),
                                 region_name=REGION, **kwargs)

    def authtoken_overrides(self) -> dict:
        """``{(group, option): value}`` for the API's auth_token middleware
        (no cache, so a revoked token is refused at once)."""
        creds = self.credentials('lifecycle')
        values = {('api', 'auth_strategy'): 'keystone',
                  ('keystone_authtoken', 'www_authenticate_uri'):
                      self.auth_url,
                  ('keystone_authtoken', 'auth_type'): 'password',
                  ('keystone_authtoken', 'token_cache_time'): -1,
                  ('keystone_authtoken', 'region_name'): REGION}
        for key in ('auth_url', 'username', 'password', 'project_name',
                    'user_domain_name', 'project_domain_name'):
            values[('keystone_authtoken', key)] = creds[key]
        return values


def _mysql(statement: str) -> None:
    """A statement as MariaDB's root (127.0.0.1:3306, no password)."""
    import pymysql
    conn = pymysql.connect(host='127.0.0.1', port=3306, user='root')
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


def _setup_identity(server: KeystoneServer) -> Cloud:
    import openstack
    admin = openstack.connect(
        auth={'auth_url': server.auth_url, 'username': 'admin',
              'password': ADMIN_PASSWORD, 'project_name': 'admin',
              'user_domain_name': 'Default',
              'project_domain_name': 'Default'}, region_name=REGION)
    identity = admin.identity
    roles = {r.name: r for r in identity.roles()}
    for name in ('member', 'reader', 'service'):
        if name not in roles:
            roles[name] = identity.create_role(name=name)
    projects, users = {}, {}
    for name in ('admin', 'project-a', 'project-b', 'service'):
        project = identity.find_project(name)
        if project is None:
            project = identity.create_project(name=name, domain_id='default')
        projects[name] = project.id
    for user, project, password, grants in (
            ('member-a', 'project-a', PASSWORD, ('member', 'reader')),
            ('member-b', 'project-b', PASSWORD, ('member', 'reader')),
            ('lifecycle', 'service', SERVICE_PASSWORD, ('service', 'admin'))):
        found = identity.create_user(name=user, password=password,
                                     domain_id='default',
                                     default_project_id=projects[project])
        users[user] = found.id
        for role in grants:
            # The identity API's own call (PUT, 204), checked.
            resp = identity.put('/projects/%s/users/%s/roles/%s' % (
                projects[project], found.id, roles[role].id))
            assert resp.status_code == 204, resp.text
    users['admin'] = identity.find_user('admin').id
    admin.close()
    return Cloud(server, server.auth_url, projects, users)


@pytest.fixture(scope='session')
def keystone(tmp_path_factory):
    """A running Keystone with two projects, their members and the
    service user (:class:`Cloud`)."""
    python = os.environ.get('LIFECYCLE_KEYSTONE_PYTHON')
    reason = None
    if not python:
        python, reason = build_venv()
    require(python is not None,
            'a virtualenv with keystone==%s (%s)' % (KEYSTONE_VERSION,
                                                     reason))
    server = KeystoneServer(python, str(tmp_path_factory.mktemp('keystone')))
    try:
        server.configure()
        server.start()
        cloud = _setup_identity(server)
    except Exception as e:  # any failure to start
        server.stop()
        server.drop_database()
        require(False, 'a running Keystone (%s)' % e)
    yield cloud
    server.stop()
    server.drop_database()
