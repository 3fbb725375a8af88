"""Several service processes over real RabbitMQ and PostgreSQL/MariaDB, as
an operator starts them: :class:`Deployment` (config files written to disk,
``lifecycle-manage db sync`` run once, then ``python -m
lifecycle.cmd.{conductor,api,compute} --config-file ...`` as separate
processes), its :class:`ServiceProcess` objects, :class:`Standbys` and the
fresh databases of :class:`DatabaseServer`. The isolation of parallel runs
is described in tests/integration/conftest.py, which wraps these in
fixtures; tools/bench uses them too."""

import collections
import ctypes
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from concurrent import futures

import libvirt
import sqlalchemy as sa

from lifecycle.image import local as local_image
from tests.conftest import require
from tests.conftest import tcp_reachable
from tests.harness.client import Client
# The broker of the deployments (tools/bench reaches both through here).
from tests.harness.rabbit import RABBIT_URL  # noqa: F401
from tests.harness.rabbit import rabbit_usable  # noqa: F401

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# name: (host, port, SQLAlchemy URL with %s for the database name, admin db)
DATABASE_SERVERS = {
    'postgresql': ('127.0.0.1', 5432,
                   'postgresql+psycopg2://postgres@127.0.0.1:5432/%s',
                   'postgres'),
    'mysql': ('127.0.0.1', 3306,
              'mysql+pymysql://root@127.0.0.1:3306/%s?charset=utf8mb4', ''),
}
SESSION_ID = '%s%d' % (uuid.uuid4().hex[:6], os.getpid())
LOG_TAIL_LINES = 150
START_TIMEOUT = 60
STOP_TIMEOUT = 15

_DATABASE_NUMBERS = itertools.count()


# -- external services ------------------------------------------------------

class DatabaseServer:
    """Creates fresh databases on one server; drops them all at the end."""

    def __init__(self, name: str) -> None:
        self.name = name
        host, port, self._url, admin_db = DATABASE_SERVERS[name]
        require(tcp_reachable(host, port),
                '%s at %s:%d' % (name, host, port))
        self._admin = sa.create_engine(self._url % admin_db,
                                       isolation_level='AUTOCOMMIT')
        try:
            with self._admin.connect():
                pass
        except sa.exc.SQLAlchemyError as e:
            require(False, '%s at %s:%d (%s)' % (name, host, port, e))
        self._created: list[str] = []

    def create(self) -> str:
        """URL of a new, empty database."""
        # Numbered across every DatabaseServer of the session: several
        # objects may create databases on the same server.
        name = 'lifecycle_it_%s_%d' % (SESSION_ID, next(_DATABASE_NUMBERS))
        with self._admin.connect() as conn:
            conn.exec_driver_sql('CREATE DATABASE %s' % name)
        self._created.append(name)
        return self._url % name

    def drop_all(self) -> None:
        force = ' WITH (FORCE)' if self.name == 'postgresql' else ''
        with self._admin.connect() as conn:
            for name in self._created:
                conn.exec_driver_sql('DROP DATABASE IF EXISTS %s%s'
                                     % (name, force))
        self._admin.dispose()


# -- processes ----------------------------------------------------------------

def die_with_parent() -> None:
    # Runs in the child before exec: SIGKILL when the test process dies, so
    # a killed pytest leaves no services behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def service_env(extra: dict | None = None) -> dict:
    return dict(os.environ, PYTHONPATH=REPO_ROOT, PYTHONUNBUFFERED='1',
                **(extra or {}))


def interpreter_env(env: dict) -> frozenset:
    """What the interpreter reads when it starts (not later)."""
    return frozenset((k, v) for k, v in env.items()
                     if k.startswith('PYTHON'))


class Standbys:
    """:mod:`tests.integration.standby` processes per service command,
    their imports done ahead of need. :meth:`take` hands one over (to be
    told its arguments, environment and log) or, with none at hand, starts
    one that is told at once; from the second take of a command on, it
    keeps ``depth`` of them importing or waiting while the tests go on. A
    restart then costs the service's own start, not seconds of imports on
    top; what the service does once told is what a cold start does.

    The standbys die with the test process (``PR_SET_PDEATHSIG``) and are
    killed by :meth:`close`."""

    def __init__(self, log_dir: str, depth: int = 2) -> None:
        self.log_dir = log_dir
        self.depth = depth
        self._ready: dict[tuple, list[subprocess.Popen]] = {}
        self._taken: collections.Counter = collections.Counter()
        self._count = itertools.count()

    def _start(self, command: str, env: dict) -> subprocess.Popen:
        prelog = os.path.join(self.log_dir, 'standby-%s-%d.log' % (
            command, next(self._count)))
        with open(prelog, 'ab') as out:
            return subprocess.Popen(
                [sys.executable, '-m', 'tests.integration.standby', command,
                 prelog], stdin=subprocess.PIPE, stdout=out,
                stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env,
                preexec_fn=die_with_parent)

    def take(self, command: str, args: list[str], env: dict,
             log_path: str) -> subprocess.Popen:
        """The process of ``command`` started with ``args``, ``env`` (the
        whole environment) and its output appended to ``log_path``."""
        key = (command, interpreter_env(env))
        # The standby's own environment: the interpreter's part of the
        # service's, the rest as any service of the session has it.
        standby_env = {k: v for k, v in service_env().items()
                       if not k.startswith('PYTHON')}
        standby_env.update(key[1])
        ready = [p for p in self._ready.get(key, []) if p.poll() is None]
        popen = ready.pop(0) if ready else self._start(command, standby_env)
        if self._taken[key]:
            while len(ready) < self.depth:
                ready.append(self._start(command, standby_env))
        self._taken[key] += 1
        self._ready[key] = ready
        popen.stdin.write(json.dumps({'args': args, 'env': env,
                                      'log': log_path}).encode() + b'\n')
        popen.stdin.close()
        return popen

    def close(self) -> None:
        """SIGKILL to the standbys not taken: they started nothing."""
        waiting = [p for ready in self._ready.values() for p in ready]
        self._ready.clear()
        for popen in waiting:
            popen.kill()
        for popen in waiting:
            popen.wait()
            popen.stdin.close()


class ServiceProcess:
    def __init__(self, name: str, command: str, config_files: list[str],
                 log_path: str, env: dict | None = None,
                 wrapper: list[str] | None = None,
                 standbys: Standbys | None = None) -> None:
        """``standbys``: take the process from there (not with a
        ``wrapper``)."""
        self.name = name
        self.log_path = log_path
        env = service_env(env)
        self._terminated = False
        self._log = open(log_path, 'ab')
        args = []
        for path in config_files:
            args += ['--config-file', path]
        if standbys is not None and not wrapper:
            self.popen = standbys.take(command, args, env, log_path)
            return
        # ``wrapper``: a command that execs the service (see
        # :func:`without_mounts`).
        self.popen = subprocess.Popen(
            list(wrapper or []) + [sys.executable, '-m',
                                   'lifecycle.cmd.%s' % command] + args,
            stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=REPO_ROOT, env=env,
            preexec_fn=die_with_parent)

    def log(self) -> str:
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        text = self.log().splitlines()
        head = ['[... %d earlier lines in %s]' % (len(text) - lines,
                                                   self.log_path)] \
            if len(text) > lines else []
        return '\n'.join(head + text[-lines:])

    def wait_ready(self, timeout: float = START_TIMEOUT) -> str:
        """The rest of the ``ready`` line the service prints once started."""
        deadline = time.monotonic() + timeout
        pattern = re.compile(r'^lifecycle-\w+ ready (.*)$', re.M)
        while True:
            match = pattern.search(self.log())
            if match:
                return match.group(1)
            if self.popen.poll() is not None:
                raise AssertionError('%s exited with status %s before it was '
                                     'ready:\n%s' % (self.name,
                                                     self.popen.returncode,
                                                     self.tail()))
            if time.monotonic() > deadline:
                raise AssertionError('%s not ready after %d s:\n%s' % (
                    self.name, timeout, self.tail()))
            time.sleep(0.1)

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('%s still running after %d s:\n%s' % (
                self.name, timeout, self.tail())) from None

    def terminate(self) -> None:
        """One SIGTERM: a second one could land while the interpreter
        exits, when the default action (death by SIGTERM) is back."""
        if not self._terminated and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        self._terminated = True

    def stop(self) -> int:
        """SIGTERM (clean stop), then SIGKILL; always reaps the process.
        Returns the exit status (-9 when it had to be killed)."""
        if self.popen.poll() is None:
            self.terminate()
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


def without_mounts(*hidden: str) -> list[str]:
    """A wrapper for :class:`ServiceProcess`: the service runs in a mount
    namespace of its own where each of ``hidden`` is an empty tmpfs, as on
    a host that does not mount that storage (needs root)."""
    script = ' && '.join('mount -t tmpfs none "$%d"' % (i + 1)
                         for i in range(len(hidden)))
    return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
            '%s && shift %d && exec "$@"' % (script, len(hidden)), 'sh',
            *hidden]


def write_conf(path: str, sections: dict[str, dict]) -> str:
    with open(path, 'w') as f:
        for section, options in sections.items():
            f.write('[%s]\n' % section)
            for key, value in options.items():
                f.write('%s = %s\n' % (key, value))
            f.write('\n')
    return path


class Deployment:
    """Config files, storage and processes of one multi-process deployment.

    ``hosts`` maps compute host names to storage group names; hosts of a
    group share one directory (the stand-in for an NFS ``instances_path``).
    """

    def __init__(self, *, root: str, log_dir: str, database_url: str,
                 transport_url: str, libvirt_uri: str,
                 hosts: dict[str, str], host_vcpus: int,
                 host_memory_mb: int,
                 standbys: Standbys | None = None) -> None:
        """``standbys``: the services' processes are taken from there (see
        :class:`Standbys`)."""
        self.root = root
        self.standbys = standbys
        self.log_dir = log_dir
        self.database_url = database_url
        self.hosts = hosts
        self.libvirt_uri = libvirt_uri
        self.topic_prefix = 'it-%s-' % uuid.uuid4().hex[:12]
        self.processes: dict[str, ServiceProcess] = {}
        self.url: str | None = None
        self.image_id: str | None = None
        self._mkdir()
        self.images_dir = self._mkdir('images')
        self.common_conf = write_conf(os.path.join(log_dir, 'common.conf'), {
            'DEFAULT': {
                'transport_url': transport_url,
                'rpc_topic_prefix': self.topic_prefix,
                'shutdown_timeout': 0,
                'rpc_response_timeout': 30,
                'debug': 'true',
            },
            'database': {'connection': database_url, 'max_retries': 3},
            'image': {'local_dir': self.images_dir},
            'libvirt': {'connection_uri': libvirt_uri},
            'compute': {'vcpus': host_vcpus, 'memory_mb': host_memory_mb,
                        'report_interval': 2},
            # No Keystone here: Nova's noauth2 (no token: the admin).
            'api': {'host': '127.0.0.1', 'port': 0,
                    'auth_strategy': 'noauth2'},
            # Queues go with the last consumer, and reply/fanout queues of a
            # killed process expire within a minute: runs leave none behind.
            'oslo_messaging_rabbit': {'amqp_auto_delete': 'true',
                                      'rabbit_transient_queues_ttl': 60,
                                      # An RPC server's stop waits for its
                                      # listener's poll: up to 5 s with the
                                      # default rate, 1 s (threshold / rate
                                      # / 2) with this one. The threshold
                                      # (a silent broker is down) stays.
                                      'heartbeat_rate': 30},
        })

    def _mkdir(self, *parts: str) -> str:
        path = os.path.join(self.root, *parts)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o755)
        return path

    def storage_path(self, group: str) -> str:
        return os.path.join(self.root, 'storage', group)

    def disk_of(self, server_id: str, group: str) -> str:
        return os.path.join(self.storage_path(group), server_id, 'disk')

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, '-m', 'lifecycle.cmd.manage', '--config-file',
             self.common_conf, *args], cwd=REPO_ROOT, capture_output=True,
            text=True, env=dict(os.environ, PYTHONPATH=REPO_ROOT), timeout=120)

    def spawn(self, name: str, command: str,
              extra: dict[str, dict] | None = None,
              env: dict | None = None,
              wrapper: list[str] | None = None) -> ServiceProcess:
        files = [self.common_conf]
        if extra:
            files.append(write_conf(
                os.path.join(self.log_dir, '%s.conf' % name), extra))
        process = ServiceProcess(name, command, files,
                                 os.path.join(self.log_dir, '%s.log' % name),
                                 env, wrapper, self.standbys)
        self.processes[name] = process
        return process

    def start(self, *, extra: dict[str, dict] | None = None,
              wrappers: dict[str, list[str]] | None = None,
              wave: int | None = None) -> 'Deployment':
        """db sync, the services, the image and the storage groups;
        ``extra`` adds config sections and ``wrappers`` a wrapper command
        (:func:`without_mounts`) per service name (``conductor``, ``api``
        or a host). ``wave``: start the computes that many at a time, each
        wave ready before the next (all at once by default)."""
        extra = extra or {}
        wrappers = wrappers or {}

        def conf(name: str, sections: dict) -> dict:
            for section, options in extra.get(name, {}).items():
                sections = dict(sections)
                sections[section] = dict(sections.get(section, {}),
                                         **options)
            return sections

        synced = self.manage('db', 'sync')
        assert synced.returncode == 0, synced.stdout + synced.stderr
        started = [self.spawn('conductor', 'conductor',
                              conf('conductor',
                                   {'DEFAULT': {'host': 'conductor-1'}}),
                              wrapper=wrappers.get('conductor')),
                   self.spawn('api', 'api', conf('api', {}) or None,
                              wrapper=wrappers.get('api'))]
        hosts = list(self.hosts.items())
        wave = wave or len(hosts) or 1
        for first in range(0, len(hosts), wave):
            if first:
                for process in started:
                    process.wait_ready()
            for host, group in hosts[first:first + wave]:
                started.append(self.spawn(host, 'compute', conf(host, {
                    'DEFAULT': {
                        'host': host,
                        'instances_path': self._mkdir('storage', group)}}),
                    wrapper=wrappers.get(host)))
        for process in started:
            where = process.wait_ready()
            if process.name == 'api':
                self.url = where.removeprefix('at ').strip()
        self._add_image()
        self._create_storage_groups()
        return self

    def _add_image(self) -> None:
        """The operator's image upload: a small qcow2 with no OS."""
        blank = os.path.join(self.log_dir, 'blank.qcow2')
        local_image.make_blank_image(blank, 64)
        images = local_image.LocalImageService(self.images_dir)
        self.image_id = images.create('it-blank', blank)['id']

    def _create_storage_groups(self) -> None:
        """One aggregate with ``storage_group`` metadata per group, as the
        operator creates them (the compute hosts must have registered)."""
        client = Client(self.url)
        for group in sorted(set(self.hosts.values())):
            status, body = client.request(
                'POST', '/os-aggregates',
                {'aggregate': {'name': 'storage-%s' % group}})
            assert status == 200, (status, body)
            agg_id = body['aggregate']['id']
            path = '/os-aggregates/%s/action' % agg_id
            status, body = client.request('POST', path, {'set_metadata': {
                'metadata': {'storage_group': group}}})
            assert status == 200, (status, body)
            for host in sorted(h for h, g in self.hosts.items()
                               if g == group):
                status, body = client.request(
                    'POST', path, {'add_host': {'host': host}})
                assert status == 200, (status, body)

    def check_alive(self) -> None:
        for process in self.processes.values():
            if process.popen.poll() is not None:
                raise AssertionError('%s exited with status %s:\n%s' % (
                    process.name, process.popen.returncode, process.tail()))

    def stop(self) -> dict[str, int]:
        """Stop every process (SIGTERM to all at once, SIGKILL after
        ``STOP_TIMEOUT``), remove leftover guests; the exit statuses."""
        for process in self.processes.values():
            process.terminate()
        statuses = {name: process.stop()
                    for name, process in self.processes.items()}
        self._remove_domains()
        return statuses

    def _remove_domains(self) -> None:
        """Guests this deployment left on the hypervisor (a failed test, or
        the fillers of a passed one): found by their disks under this
        deployment's storage, destroyed in parallel (libvirt takes a while
        to reap each QEMU)."""
        if self.libvirt_uri.startswith('test:'):
            return  # lived in the service processes only
        conn = libvirt.open(self.libvirt_uri)

        def remove(dom) -> None:
            try:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
            except libvirt.libvirtError:
                pass  # gone meanwhile

        try:
            ours = []
            for dom in conn.listAllDomains():
                try:
                    if self.root + '/' in dom.XMLDesc():
                        ours.append(dom)
                except libvirt.libvirtError:
                    pass  # gone meanwhile
            with futures.ThreadPoolExecutor(max(len(ours), 1)) as pool:
                list(pool.map(remove, ours))
        finally:
            conn.close()

    def log_sections(self) -> list[tuple[str, str]]:
        return [('%s log (%s)' % (p.name, p.log_path), p.tail())
                for p in self.processes.values()]
