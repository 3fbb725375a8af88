"""The few RBD operations the ``rbd`` backend needs, through Ceph's CLI.

Why the ``rbd``/``ceph`` commands and not the ``rados``/``rbd`` Python
bindings: Debian ships the bindings (``python3-rbd``, ``python3-rados``)
only for its own ``/usr/bin/python3``; using them would tie the service's
virtualenv to ``--system-site-packages``, letting Debian's Python packages
leak into an environment whose versions ``constraints.txt`` pins. The
commands (package ``ceph-common``) work from any interpreter, speak JSON
(``--format json``), and run in a child process that a timeout can kill --
a librados call on an unreachable cluster can block a thread for good. Every
operation here is coarse (clone, snapshot, import a whole image), so a
process per call costs nothing that matters. The same commands are what an
operator types to look at the pool.

Arguments are passed as a list (no shell); pool, image and snapshot names
are checked against a conservative pattern before they reach a command.
"""

import json
import re
import subprocess

from oslo_log import log as logging

from lifecycle import exception

LOG = logging.getLogger(__name__)

_NAME_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')
# errno values the rbd command exits with (it returns -r as its status).
ENOENT = 2
EBUSY = 16
EEXIST = 17


class RbdCommandError(exception.StorageError):
    """An ``rbd``/``ceph`` command failed; ``errno`` is its exit status."""

    def __init__(self, reason: str, errno: int | None = None) -> None:
        super().__init__(reason=reason)
        self.errno = errno


def check_name(name: str, what: str = 'name') -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise exception.InvalidInput(reason='bad RBD %s %r' % (what, name))
    return name


class RbdClient:
    """``rbd``/``ceph`` against one pool of one cluster, as one client."""

    def __init__(self, ceph_conf: str, pool: str, user: str | None = None,
                 timeout: int = 120) -> None:
        self.ceph_conf = ceph_conf
        self.pool = check_name(pool, 'pool')
        self.user = user
        self.timeout = timeout

    # -- plumbing ------------------------------------------------------------

    def _common(self) -> list[str]:
        args = ['--conf', self.ceph_conf,
                # An unreachable cluster fails within the timeout instead of
                # waiting forever for a monitor.
                '--client_mount_timeout', str(self.timeout)]
        if self.user:
            args += ['--id', self.user]
        return args

    def _execute(self, cmd: list[str], stdin: bytes | None = None,
                 timeout: float | None = None) -> str:
        LOG.debug('Running %s', ' '.join(cmd))
        try:
            result = subprocess.run(
                cmd, input=stdin, capture_output=True,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                timeout=timeout or self.timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise RbdCommandError('%s timed out after %ss' % (
                ' '.join(cmd[:3]), e.timeout)) from e
        except OSError as e:
            raise RbdCommandError('%s: %s (is ceph-common installed?)'
                                  % (cmd[0], e)) from e
        if result.returncode:
            err = result.stderr.decode('utf-8', 'replace').strip()
            # librados prints messenger noise first; the reason comes last.
            last = err.splitlines()[-1] if err else ''
            raise RbdCommandError('%s failed (%d): %s' % (
                ' '.join(cmd[:3]), result.returncode, last),
                errno=result.returncode)
        return result.stdout.decode('utf-8', 'replace')

    def rbd(self, *args: str, timeout: float | None = None) -> str:
        return self._execute(['rbd'] + self._common() + list(args),
                             timeout=timeout)

    def rbd_json(self, *args: str):
        out = self.rbd(*args, '--format', 'json')
        try:
            return json.loads(out) if out.strip() else None
        except ValueError as e:
            raise RbdCommandError('unparsable output of rbd %s: %s'
                                  % (args[0], e)) from e

    def spec(self, image: str, snap: str | None = None) -> str:
        check_name(image, 'image')
        if snap is None:
            return '%s/%s' % (self.pool, image)
        return '%s/%s@%s' % (self.pool, image, check_name(snap, 'snapshot'))

    # -- cluster -------------------------------------------------------------

    def monitors(self) -> list[tuple[str, int]]:
        """Monitor addresses as (address, port), from ``ceph mon dump``
        (as Nova does): what goes into a domain's ``<host>`` elements.
        The v1 address of each monitor is preferred: an address without a
        protocol prefix means v1 to librados unless its port is 3300."""
        out = self._execute(['ceph'] + self._common() + [
            '--connect-timeout', str(self.timeout), 'mon', 'dump',
            '--format', 'json'])
        try:
            mons = json.loads(out)['mons']
        except (ValueError, KeyError) as e:
            raise RbdCommandError('unparsable ceph mon dump: %s' % e) from e
        found = []
        for mon in mons:
            addrs = (mon.get('public_addrs') or {}).get('addrvec') or []
            chosen = (next((a for a in addrs if a.get('type') == 'v1'), None)
                      or next(iter(addrs), None))
            addr = chosen['addr'] if chosen else mon.get('addr', '')
            addr = addr.split('/')[0]  # drop the nonce
            host, _, port = addr.rpartition(':')
            if host and port.isdigit():
                found.append((host.strip('[]'), int(port)))
        if not found:
            raise RbdCommandError('no monitor address in ceph mon dump')
        return found

    # -- images --------------------------------------------------------------

    def list_images(self) -> list[str]:
        return sorted(self.rbd_json('ls', self.pool) or [])

    def info(self, image: str) -> dict | None:
        """``rbd info`` of ``image``, None when it does not exist."""
        try:
            return self.rbd_json('info', self.spec(image))
        except RbdCommandError as e:
            if e.errno == ENOENT:
                return None
            raise

    def exists(self, image: str) -> bool:
        return self.info(image) is not None

    def import_file(self, path: str, image: str) -> None:
        """A new format-2 image from a raw file (zero runs stay holes)."""
        self.rbd('import', '--no-progress', '--image-format', '2', path,
                 self.spec(image))

    def export_file(self, image: str, path: str) -> None:
        self.rbd('export', '--no-progress', self.spec(image), path)

    def clone(self, parent: str, snap: str, child: str) -> None:
        self.rbd('clone', self.spec(parent, snap), self.spec(child))

    def resize(self, image: str, size_bytes: int) -> None:
        """Grow ``image`` (thin: no data is written)."""
        self.rbd('resize', '--no-progress', '--size',
                 '%dB' % int(size_bytes), self.spec(image))

    def rename(self, image: str, new_name: str) -> None:
        """Fails with EEXIST when ``new_name`` exists (atomic in Ceph)."""
        self.rbd('rename', self.spec(image), self.spec(new_name))

    def remove(self, image: str) -> None:
        """Remove ``image``; a missing one is not an error. Ceph refuses
        (EBUSY) while it has snapshots or a client has it open."""
        try:
            self.rbd('rm', '--no-progress', self.spec(image))
        except RbdCommandError as e:
            if e.errno != ENOENT:
                raise

    def used_bytes(self, image: str) -> int:
        """Bytes the image's own objects hold (``rbd du``), 0 if gone."""
        try:
            data = self.rbd_json('du', self.spec(image))
        except RbdCommandError as e:
            if e.errno == ENOENT:
                return 0
            raise
        return sum(int(i.get('used_size') or 0)
                   for i in (data or {}).get('images', [])
                   if i.get('snapshot') is None)

    # -- snapshots -----------------------------------------------------------

    def snapshots(self, image: str) -> list[dict]:
        """``[{'name', 'protected': bool, 'timestamp', ...}]``."""
        snaps = self.rbd_json('snap', 'ls', self.spec(image)) or []
        for snap in snaps:
            snap['protected'] = str(snap.get('protected')).lower() == 'true'
        return snaps

    def snap_create(self, image: str, snap: str) -> None:
        self.rbd('snap', 'create', '--no-progress', self.spec(image, snap))

    def snap_protect(self, image: str, snap: str) -> None:
        self.rbd('snap', 'protect', self.spec(image, snap))

    def snap_unprotect(self, image: str, snap: str) -> None:
        """Ceph refuses (EBUSY) while the snapshot has clones."""
        self.rbd('snap', 'unprotect', self.spec(image, snap))

    def snap_remove(self, image: str, snap: str) -> None:
        self.rbd('snap', 'rm', '--no-progress', self.spec(image, snap))

    def children(self, image: str, snap: str) -> list[str]:
        """Names of the clones of ``image@snap`` in this pool (clones in
        other pools are listed as ``pool/image``)."""
        data = self.rbd_json('children', self.spec(image, snap)) or []
        names = []
        for child in data:
            if isinstance(child, str):  # older releases: "pool/image"
                pool, _, name = child.rpartition('/')
            else:
                pool, name = child.get('pool'), child.get('image')
            names.append(name if pool == self.pool else '%s/%s' % (pool,
                                                                   name))
        return sorted(names)

    def parent(self, image: str) -> tuple[str, str] | None:
        """(image, snapshot) a clone was made from; None if not a clone
        or gone."""
        info = self.info(image)
        parent = (info or {}).get('parent')
        if not parent or parent.get('pool') != self.pool:
            return None
        return parent.get('image'), parent.get('snapshot')
