"""A real single-node Ceph cluster for the tests, from Debian's packages.

:class:`CephCluster` bootstraps one monitor and one OSD by hand, the way the
Ceph documentation's "manual deployment" does, without systemd, cephadm or
a manager daemon (nothing here needs one):

* everything lives in one temporary directory: ``ceph.conf``, the monitor's
  and the OSD's data, admin sockets, logs and pid files;
* the monitor listens on 127.0.0.1 at a free port picked at start, messenger
  v1 only (a bare ``host:port`` other than 3300 means v1 to librados, so the
  ``<host name=… port=…/>`` libvirt writes needs no protocol prefix), never
  on the default 6789 another cluster may hold;
* ``auth_*_required = none``: no keyrings, no cephx (what the backend adds
  for cephx, ``<auth>`` with a libvirt secret, is covered by the domain XML
  unit tests);
* the OSD uses ``memstore``: its data lives in the OSD's RAM (``memstore
  device bytes`` caps it), so the tests keep their images small; RBD is thin
  and only written bytes count;
* pool size 1 (``osd pool default size = 1``, ``mon allow pool size one``),
  no PG autoscaler, ``paxos propose interval = 0.05``: the cluster is
  usable about two seconds after start.

A pool is created and ``rbd pool init``-ed. :meth:`CephCluster.stop` kills
both daemons and removes the directory; memstore keeps nothing on disk.

The session fixture :func:`ceph_cluster` starts one cluster for the whole
test session; ``tests/functional/conftest.py`` imports it, so every
functional test module shares that one cluster (a module that defined the
fixture again would get a cluster of its own). When the Ceph packages are
missing or the cluster does not come up, tests needing it are skipped on a
laptop and **fail** under ``CI=true`` (``tests.conftest.require``).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
import uuid

import pytest

from tests.conftest import require

DAEMONS = ('ceph-mon', 'ceph-osd', 'monmaptool', 'rbd', 'ceph')
START_TIMEOUT = 60
MEMSTORE_BYTES = 512 * 1024 * 1024
POOL = 'lifecycle'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class CephError(Exception):
    pass


class CephCluster:
    """One mon + one memstore OSD under ``root`` (see the module doc)."""

    def __init__(self, root: str, pool: str = POOL) -> None:
        self.root = root
        self.pool = pool
        self.port = _free_port()
        self.fsid = str(uuid.uuid4())
        self.conf = os.path.join(root, 'ceph.conf')
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def mon_host(self) -> str:
        return '127.0.0.1:%d' % self.port

    def _path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def write_conf(self) -> None:
        for sub in ('run', 'log', 'mon-a', 'osd-0'):
            os.makedirs(self._path(sub), exist_ok=True)
        # QEMU (user libvirt-qemu under qemu:///system) reads this file
        # when a test points qemu-io at it; root-only temp dirs would hide
        # it.
        os.chmod(self.root, 0o755)
        text = textwrap.dedent("""\
            [global]
            fsid = {fsid}
            mon host = {mon_host}
            mon initial members = a
            auth cluster required = none
            auth service required = none
            auth client required = none
            ms bind msgr2 = false
            run dir = {root}/run
            admin socket = {root}/run/$cluster-$name.asok
            log file = {root}/log/$name.log
            pid file = {root}/run/$name.pid
            osd pool default size = 1
            osd pool default min size = 1
            osd pool default pg num = 8
            osd pool default pgp num = 8
            osd pool default pg autoscale mode = off
            osd crush chooseleaf type = 0
            mon allow pool size one = true
            mon allow pool delete = true
            mon warn on pool no redundancy = false
            paxos propose interval = 0.05
            client mount timeout = 30

            [client]
            # A client (qemu, rbd) may run as a user that cannot write here.
            admin socket =
            log file = /dev/null

            [mon]
            mon data = {root}/mon-$id
            mon cluster log file = {root}/log/cluster.log

            [osd]
            osd data = {root}/osd-$id
            osd objectstore = memstore
            memstore device bytes = {memstore}
            osd max object name len = 256
            osd max object namespace len = 64
            # The OSD would place itself in the CRUSH map at start with a
            # command that, racing its first monitor map, can carry a null
            # fsid and be refused (the OSD then exits); start() places it.
            osd crush update on start = false
            osd class update on start = false
            """).format(fsid=self.fsid, mon_host=self.mon_host,
                        root=self.root, memstore=MEMSTORE_BYTES)
        with open(self.conf, 'w') as f:
            f.write(text)
        os.chmod(self.conf, 0o644)

    def _run(self, *cmd: str, timeout: float = 60) -> str:
        result = subprocess.run(cmd, capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        if result.returncode:
            raise CephError('%s failed (%d): %s' % (
                ' '.join(cmd), result.returncode,
                (result.stderr or result.stdout).strip()[-2000:]))
        return result.stdout

    def ceph(self, *args: str, timeout: float = 60) -> str:
        cmd = ('ceph', '-c', self.conf, '--connect-timeout', '20') + args
        for _attempt in range(50):
            try:
                return self._run(*cmd, timeout=timeout)
            except CephError as e:
                # A client that reaches a monitor before it finished
                # starting gets no command table (EPERM) -- the command did
                # not run: ask again.
                if 'problem getting command descriptions' not in str(e):
                    raise
                time.sleep(0.1)
        return self._run(*cmd, timeout=timeout)

    def rbd(self, *args: str, timeout: float = 60) -> str:
        return self._run('rbd', '-c', self.conf, *args, timeout=timeout)

    def _daemon(self, name: str, *cmd: str) -> None:
        log = open(self._path('log', name + '.out'), 'ab')
        self.procs[name] = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        log.close()

    def _wait(self, what: str, check, timeout: float = START_TIMEOUT
              ) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise CephError('%s exited with %s while waiting for '
                                    '%s; see %s' % (name, proc.returncode,
                                                    what, self._path('log')))
            try:
                if check():
                    return
            except (CephError, subprocess.TimeoutExpired) as e:
                last = e
            time.sleep(0.1)
        raise CephError('timed out waiting for %s (%s)' % (what, last))

    def start(self) -> None:
        self.write_conf()
        monmap = self._path('monmap')
        self._run('monmaptool', '--create', '--fsid', self.fsid,
                  '--addv', 'a', '[v1:%s]' % self.mon_host, monmap)
        self._run('ceph-mon', '-c', self.conf, '--mkfs', '-i', 'a',
                  '--monmap', monmap)
        self._daemon('mon.a', 'ceph-mon', '-f', '-c', self.conf, '-i', 'a')
        self._wait('the monitor', lambda: json.loads(
            self.ceph('mon', 'stat', '--format', 'json', timeout=10)))

        osd_uuid = str(uuid.uuid4())
        osd_id = self.ceph('osd', 'new', osd_uuid).strip()
        if osd_id != '0':
            raise CephError('expected osd 0, got %r' % osd_id)
        self._run('ceph-osd', '-c', self.conf, '-i', '0', '--mkfs',
                  '--osd-uuid', osd_uuid)
        self.ceph('osd', 'crush', 'add-bucket', 'node', 'host')
        self.ceph('osd', 'crush', 'move', 'node', 'root=default')
        self.ceph('osd', 'crush', 'add', 'osd.0', '1.0', 'host=node')
        self._daemon('osd.0', 'ceph-osd', '-f', '-c', self.conf, '-i', '0')
        self._wait('the OSD to be up', self._osd_up)

        self.ceph('osd', 'pool', 'create', self.pool, '8', '8')
        self.ceph('osd', 'pool', 'set', self.pool, 'size', '1',
                  '--yes-i-really-mean-it')
        self.rbd('pool', 'init', self.pool)
        self._wait('the pool to be writable', self._pool_writable)

    def _osd_up(self) -> bool:
        stat = json.loads(self.ceph('osd', 'stat', '--format', 'json',
                                    timeout=10))
        stat = stat.get('osdmap', stat)  # its shape differs per release
        return stat.get('num_up_osds') == 1 and stat.get('num_in_osds') == 1

    def _pool_writable(self) -> bool:
        name = 'probe-%s' % uuid.uuid4().hex[:8]
        self.rbd('create', '--size', '1M', '%s/%s' % (self.pool, name),
                 timeout=20)
        self.rbd('rm', '--no-progress', '%s/%s' % (self.pool, name),
                 timeout=20)
        return True

    def create_pool(self, name: str) -> str:
        """Another pool (size 1, RBD-initialised), e.g. one per test
        module so that listings in it are exactly what the test made."""
        self.ceph('osd', 'pool', 'create', name, '8', '8')
        self.ceph('osd', 'pool', 'set', name, 'size', '1',
                  '--yes-i-really-mean-it')
        self.rbd('pool', 'init', name)
        return name

    def images(self, pool: str | None = None) -> list[str]:
        return sorted(json.loads(self.rbd('ls', '--format', 'json',
                                          pool or self.pool)))

    def children(self, spec: str) -> list[str]:
        return sorted(c['image'] for c in json.loads(
            self.rbd('children', '--format', 'json', spec)))

    def qemu_filename(self, pool: str, image: str) -> str:
        return 'rbd:%s/%s:conf=%s' % (pool, image, self.conf)

    def stop(self) -> None:
        # SIGKILL at once: memstore keeps nothing worth a clean shutdown
        # (an OSD takes seconds to stop on SIGTERM) and the directory goes.
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def packages_missing() -> list[str]:
    return [cmd for cmd in DAEMONS if shutil.which(cmd) is None]


@pytest.fixture(scope='session')
def ceph_cluster():
    """A running :class:`CephCluster` with pool ``lifecycle``, for the whole
    session (skip, or fail under CI=true, when it cannot run)."""
    missing = packages_missing()
    require(not missing, 'Ceph (%s; tools/setup.sh installs ceph-mon, '
            'ceph-osd, ceph-common)' % ', '.join(missing or ['-']))
    cluster = CephCluster(tempfile.mkdtemp(prefix='lifecycle-ceph-',
                                           dir='/var/tmp'))
    try:
        try:
            cluster.start()
            error = None
        except (CephError, OSError, subprocess.TimeoutExpired) as e:
            error = str(e)
        require(error is None, 'a single-node Ceph cluster (%s)' % error)
        yield cluster
    finally:
        cluster.stop()
