"""The embedded API server (cheroot) of a running ``lifecycle-aio``
process, under hostile clients: sockets that send half a request and stall,
and a flood of concurrent connections.

The process runs with ``[wsgi] default_pool_size = 8``,
``client_socket_timeout = 3`` and ``client_request_timeout = 6``. What must
hold: the other clients keep being answered, the stalled and trickling
sockets are closed by the server, nothing gets a 5xx or a reset, and the
process's thread count stays within its pool (a thread per connection would
add hundreds). The only timings asserted are liveness deadlines, far above
what a healthy server needs.
"""

import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
POOL = 8
SOCKET_TIMEOUT = 3
REQUEST_TIMEOUT = 6
# Liveness deadlines (seconds): a healthy server needs a fraction of them.
START_DEADLINE = 90
ANSWER_DEADLINE = 60
CLOSE_DEADLINE = 60
STALLED = POOL * 4
FLOOD_CONNECTIONS = 300
FLOOD_CONCURRENCY = 150


class AioProcess:
    def __init__(self, tmp_path) -> None:
        conf = tmp_path / 'aio.conf'
        conf.write_text('\n'.join([
            '[DEFAULT]', 'transport_url = inproc://', 'shutdown_timeout = 5',
            '[aio]', 'hosts = host-a1:group-a',
            'state_dir = %s' % (tmp_path / 'state'),
            '[libvirt]', 'connection_uri = test:///default',
            '[api]', 'host = 127.0.0.1', 'port = 0',
            '[wsgi]', 'default_pool_size = %d' % POOL,
            'client_socket_timeout = %d' % SOCKET_TIMEOUT,
            'client_request_timeout = %d' % REQUEST_TIMEOUT, '']))
        self.log_path = str(tmp_path / 'aio.log')
        self._log = open(self.log_path, 'ab')
        self.popen = subprocess.Popen(
            [sys.executable, '-m', 'lifecycle.cmd.aio', '--config-file',
             str(conf)], stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
            env=dict(os.environ, PYTHONPATH=REPO_ROOT, PYTHONUNBUFFERED='1'))
        self.port = self._wait_ready()

    def log(self) -> str:
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + START_DEADLINE
        pattern = re.compile(r'^lifecycle-aio ready at http://[^:]+:(\d+)/',
                             re.M)
        while True:
            match = pattern.search(self.log())
            if match:
                return int(match.group(1))
            assert self.popen.poll() is None, self.log()[-4000:]
            assert time.monotonic() < deadline, self.log()[-4000:]
            time.sleep(0.1)

    def threads(self) -> int:
        with open('/proc/%d/status' % self.popen.pid) as f:
            return int(re.search(r'^Threads:\s+(\d+)$', f.read(),
                                 re.M).group(1))

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


@pytest.fixture
def aio_process(tmp_path):
    process = AioProcess(tmp_path)
    yield process
    assert process.stop() == 0, process.log()[-4000:]


def _get(port: str, path: str = '/v2.1/flavors') -> int:
    """One request on a new connection; its status (0: no answer)."""
    conn = http.client.HTTPConnection('127.0.0.1', port,
                                      timeout=ANSWER_DEADLINE)
    try:
        conn.request('GET', path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return 0
    finally:
        conn.close()


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server ends the connection (EOF or reset, after any
    answer it sends, e.g. 408) before CLOSE_DEADLINE."""
    deadline = time.monotonic() + CLOSE_DEADLINE
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def test_stalled_clients_do_not_hang_others(aio_process):
    assert _get(aio_process.port) == 200
    baseline = aio_process.threads()
    stalled = []
    try:
        for _ in range(STALLED):
            sock = socket.create_connection(('127.0.0.1', aio_process.port))
            # Half a request: a request line and one header, no end.
            sock.sendall(b'GET /v2.1/servers HTTP/1.1\r\nHost: x\r\n')
            stalled.append(sock)
        # While every worker may be busy with a stalled socket, others are
        # answered (each stalled one holds a worker for the socket timeout
        # at most).
        started = time.monotonic()
        for _ in range(5):
            assert _get(aio_process.port) == 200
            assert _get(aio_process.port, '/healthcheck') == 200
        assert time.monotonic() - started < ANSWER_DEADLINE
        assert aio_process.threads() <= baseline + POOL
        closed = [_closed_by_server(sock) for sock in stalled]
        assert all(closed), '%d of %d stalled sockets left open' % (
            closed.count(False), len(closed))
    finally:
        for sock in stalled:
            sock.close()
    assert _get(aio_process.port) == 200
    assert aio_process.threads() <= baseline + POOL


def test_connection_flood_gets_answers_within_the_pool(aio_process):
    assert _get(aio_process.port) == 200
    baseline = aio_process.threads()
    peak = baseline
    with futures.ThreadPoolExecutor(FLOOD_CONCURRENCY) as pool:
        answers = [pool.submit(_get, aio_process.port)
                   for _ in range(FLOOD_CONNECTIONS)]
        while not all(a.done() for a in answers):
            peak = max(peak, aio_process.threads())
            time.sleep(0.05)
    statuses = [a.result() for a in answers]
    assert statuses == [200] * FLOOD_CONNECTIONS, sorted(set(statuses))
    assert peak <= baseline + POOL, (baseline, peak)
    assert aio_process.popen.poll() is None



def test_trickling_clients_do_not_hang_others(aio_process):
    """Slowloris: sockets sending their request a byte at a time, each byte
    well within the socket timeout, never finishing it. Without a deadline
    for the whole request they would hold every worker for ever."""
    assert _get(aio_process.port) == 200
    baseline = aio_process.threads()
    trickling = [socket.create_connection(('127.0.0.1', aio_process.port))
                 for _ in range(STALLED)]
    # Byte by byte, a request that never ends (a header line per byte).
    request = iter(b'GET /v2.1/servers HTTP/1.1\r\n' +
                   b'X-Slow: y\r\n' * 10000)
    done = threading.Event()
    closed: set[int] = set()

    def trickle() -> None:
        while not done.is_set():
            byte = bytes([next(request)])
            for i, sock in enumerate(trickling):
                if i not in closed:
                    try:
                        sock.send(byte)
                    except OSError:
                        closed.add(i)
            done.wait(SOCKET_TIMEOUT / 4)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        done.wait(SOCKET_TIMEOUT)  # every worker busy with a trickler
        started = time.monotonic()
        for _ in range(5):
            assert _get(aio_process.port) == 200
        assert time.monotonic() - started < ANSWER_DEADLINE
        assert aio_process.threads() <= baseline + POOL
    finally:
        done.set()
        sender.join()
    try:
        ended = [i in closed or _closed_by_server(sock)
                 for i, sock in enumerate(trickling)]
        assert all(ended), '%d of %d trickling sockets left open' % (
            ended.count(False), len(ended))
    finally:
        for sock in trickling:
            sock.close()
    assert _get(aio_process.port) == 200
