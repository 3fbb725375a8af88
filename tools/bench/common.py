"""Helpers shared by the benchmark sections: statistics, a small REST
client, disk and I/O accounting, random disk data."""

import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse

from lifecycle import storage_groups
from tests.harness import client as harness_client

MiB = 1024 ** 2
GiB = 1024 ** 3
MICROVERSION = '2.91'


# -- statistics ---------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100), as numpy's
    default; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: list[float]) -> dict:
    """n, median, min, max, p25/p75 (IQR), p99 and the raw values."""
    values = [float(v) for v in values]
    if not values:
        return {'n': 0, 'median': None, 'min': None, 'max': None,
                'p25': None, 'p75': None, 'p99': None, 'values': []}
    return {'n': len(values), 'median': statistics.median(values),
            'min': min(values), 'max': max(values),
            'p25': percentile(values, 25), 'p75': percentile(values, 75),
            'p99': percentile(values, 99), 'values': values}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


# -- I/O accounting -----------------------------------------------------------

def io_written() -> int:
    """``write_bytes`` of this process from /proc/self/io: bytes it (and
    the children it has reaped, e.g. ``qemu-img``) caused to be written to
    block storage; 0 where the kernel does not account I/O."""
    try:
        with open('/proc/self/io') as f:
            for line in f:
                if line.startswith('write_bytes:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def allocated_bytes(top: str) -> int:
    """Allocated bytes (st_blocks) of every regular file under ``top``."""
    return storage_groups.allocated_bytes(top, top)


def apparent_bytes(top: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(top):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# -- random disk data ---------------------------------------------------------

def write_random_raw(path: str, size: int) -> None:
    """``size`` bytes of incompressible data: an AES-128-CTR keystream
    under a random key from openssl (much faster than /dev/urandom, and as
    incompressible), else /dev/urandom."""
    if shutil.which('openssl'):
        cmd = ['openssl', 'enc', '-aes-128-ctr', '-K', os.urandom(16).hex(),
               '-iv', os.urandom(16).hex()]
        source = '/dev/zero'
    else:
        cmd = ['cat']
        source = '/dev/urandom'
    with open(source, 'rb') as src, open(path, 'wb') as out:
        proc = subprocess.Popen(cmd, stdin=src, stdout=subprocess.PIPE)
        try:
            remaining = size
            while remaining:
                chunk = proc.stdout.read(min(remaining, 8 * MiB))
                if not chunk:
                    raise RuntimeError('random source ended early')
                out.write(chunk)
                remaining -= len(chunk)
        finally:
            proc.kill()
            proc.stdout.close()
            proc.wait()


def fill_qcow2_random(disk: str, size: int, scratch_dir: str,
                      offset: int = 0) -> None:
    """Write ``size`` bytes of random data into the qcow2 ``disk`` (an
    overlay: the data lands in the overlay itself) at ``offset``."""
    fd, raw = tempfile.mkstemp(prefix='random-', suffix='.raw',
                               dir=scratch_dir)
    os.close(fd)
    try:
        write_random_raw(raw, size)
        if offset == 0 and size >= 256 * MiB:
            subprocess.run(['qemu-img', 'convert', '-n', '-f', 'raw', '-O',
                            'qcow2', raw, disk], check=True)
        else:
            subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                            'write -q -s %s %d %d' % (raw, offset, size),
                            disk], check=True, capture_output=True)
    finally:
        os.unlink(raw)


# -- REST client --------------------------------------------------------------

class Client(harness_client.Client):
    """The tests' client, raising on an answer a benchmark cannot go on
    from (the tests' own assert instead), with a benchmark's patience: a
    burst of hundreds of requests may keep one waiting for a minute."""

    def __init__(self, url: str, microversion: str = MICROVERSION) -> None:
        super().__init__(url.rstrip('/'), microversion, timeout=120)

    def server(self, server_id: str) -> dict:
        status, body = self.request('GET', '/servers/%s' % server_id)
        if status != 200:
            raise RuntimeError('GET server %s: %s %s' % (server_id, status,
                                                         body))
        return body['server']

    def action(self, server_id: str, body: dict) -> None:
        status, answer = self.request('POST', '/servers/%s/action' %
                                      server_id, body)
        if status != 202:
            raise RuntimeError('%s on %s refused: %s %s' % (
                body, server_id, status, answer))

    def wait(self, server_id: str, status: str, timeout: float = 600,
             interval: float = 0.05) -> dict:
        """Poll until ``status`` with no task; raises on ERROR/timeout."""
        deadline = time.monotonic() + timeout
        while True:
            server = self.server(server_id)
            if (server['status'] == status and
                    server['OS-EXT-STS:task_state'] is None):
                return server
            if server['status'] == 'ERROR' and status != 'ERROR':
                raise RuntimeError('server %s went to ERROR: %s' % (
                    server_id, server.get('fault')))
            if 'fault' in server and server['OS-EXT-STS:task_state'] is None \
                    and server['status'] != status:
                raise RuntimeError('server %s: %s (fault %s)' % (
                    server_id, server['status'], server['fault']))
            if time.monotonic() > deadline:
                raise RuntimeError('server %s still %s/%s, wanted %s' % (
                    server_id, server['status'],
                    server['OS-EXT-STS:task_state'], status))
            time.sleep(interval)

    def boot(self, name: str, image: str, flavor: str,
             host: str | None = None) -> str:
        body = {'name': name, 'flavorRef': flavor, 'networks': 'none',
                'imageRef': image}
        if host:
            body['host'] = host
        status, resp = self.request('POST', '/servers', {'server': body})
        if status != 202:
            raise RuntimeError('boot refused: %s %s' % (status, resp))
        return resp['server']['id']

    def images(self) -> list[dict]:
        status, body = self.request('GET', '/images')
        if status != 200:
            raise RuntimeError('GET /images: %s %s' % (status, body))
        return body['images']

    def create_flavor(self, flavorid: str, name: str, ram: int, vcpus: int,
                      disk: int) -> None:
        status, body = self.request('POST', '/flavors', {'flavor': {
            'id': flavorid, 'name': name, 'ram': ram, 'vcpus': vcpus,
            'disk': disk}})
        if status not in (200, 409):
            raise RuntimeError('flavor create: %s %s' % (status, body))

    def hypervisors(self) -> list[dict]:
        status, body = self.request('GET', '/os-hypervisors/detail')
        if status != 200:
            raise RuntimeError('GET hypervisors: %s %s' % (status, body))
        return body['hypervisors']

    def servers_detail(self, changes_since: str | None = None
                       ) -> list[dict]:
        """Every server, or (``changes_since``, ISO 8601) those changed
        since then, deleted ones included."""
        path = '/servers/detail?limit=1000'
        if changes_since:
            path += '&changes-since=' + urllib.parse.quote(changes_since)
        status, body = self.request('GET', path)
        if status != 200:
            raise RuntimeError('GET servers/detail: %s %s' % (status, body))
        return body['servers']


def make_work_dir(parent: str, prefix: str) -> str:
    """A 0755 directory (QEMU under qemu:///system must traverse it)."""
    os.makedirs(parent, exist_ok=True)
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(path, 0o755)
    return path


def log(message: str, *args) -> None:
    text = message % args if args else message
    print('[%s] %s' % (time.strftime('%H:%M:%S'), text), flush=True)
