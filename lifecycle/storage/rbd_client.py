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
from lifecycle.exception import RbdCommandError

LOG = logging.getLogger(__name__)

_NAME_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')
# errno values the rbd command exits with (it returns -r as its status).
ENOENT = 2
EBUSY = 16
EEXIST = 17


def check_name(name: str, what: str = 'name') -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise exception.InvalidInput(reason='bad RBD %s %r' % (what, name))
    return name


def _split_top(value: str) -> list[str]:
    """Split at commas, semicolons and blanks outside ``[...]``."""
    parts, depth, current = [], 0, ''
    for char in value:
        if char == '[':
            depth += 1
        elif char == ']':
            depth -= 1
        if depth == 0 and char in ', ;\t':
            parts.append(current)
            current = ''
        else:
            current += char
    parts.append(current)
    return [p for p in (p.strip() for p in parts) if p]


def _host_port(addr: str, default_port: int) -> tuple[str, int] | None:
    addr = addr.split('/')[0]  # an address may carry a nonce
    if addr.startswith('['):  # [IPv6]:port
        host, _, rest = addr[1:].partition(']')
        port = rest.lstrip(':')
    elif addr.count(':') == 1:
        host, _, port = addr.partition(':')
    else:  # a name, IPv4, or bare IPv6 without port
        host, port = addr, ''
    if not host:
        return None
    if not port:
        return host, default_port
    return (host, int(port)) if port.isdigit() else None


def parse_mon_host(value: str) -> list[tuple[str, int]]:
    """``mon_host`` as [(address, port)], one per monitor.

    Accepts every form Ceph does: ``a,b``, ``a:6789 b:6789``,
    ``v1:a:6789``, address vectors ``[v2:a:3300,v1:a:6789]`` (the v1 address
    is taken: a bare ``host:port`` means v1 to librados unless the port is
    3300) and ``[::1]:6789``. Ports default to 6789 (v1) or 3300 (v2).
    """
    found = []
    for entry in _split_top(value):
        if entry.startswith('[') and ('v1:' in entry or 'v2:' in entry):
            addrs = _split_top(entry[1:-1] if entry.endswith(']')
                               else entry[1:])
            entry = next((a for a in addrs if a.startswith('v1:')),
                         addrs[0] if addrs else '')
        default = 6789
        if entry.startswith(('v1:', 'v2:')):
            default = 3300 if entry.startswith('v2:') else 6789
            entry = entry[3:]
        parsed = _host_port(entry, default)
        if parsed:
            found.append(parsed)
    return found


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
        """Monitor addresses as (address, port): what goes into a domain's
        ``<host>`` elements.

        Read from the Ceph configuration's ``mon_host`` (``ceph-conf
        --lookup``: no cluster round trip), the same list librados starts
        from. Nova asks the cluster (``ceph mon dump``) instead; that needs
        the ``ceph`` command's monitor session, which with auth ``none``
        is refused now and then while a monitor settles (EPERM "problem
        getting command descriptions"), and a spawn must not fail on that.
        """
        out = self._execute(['ceph-conf', '--conf', self.ceph_conf,
                             '--lookup', 'mon_host']).strip()
        found = parse_mon_host(out)
        if not found:
            raise RbdCommandError('no monitor address in mon_host of %s: %r'
                                  % (self.ceph_conf, out))
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
