"""A service's RPC worker threads: ``Service.start(rpc_thread_pool_size)``
(what ``[aio] executor_thread_pool_size`` sets for every in-process
service) bounds how many requests it works on at once; the rest wait and
are all carried out. Real oslo.messaging server and client over the
all-in-one's inproc:// transport."""

import threading
import time
import uuid

import oslo_messaging as messaging
import pytest

from lifecycle import context as lc_context
from lifecycle import rpc
from lifecycle import service
from lifecycle.conf import CONF
from tests.harness.polling import wait_until

REQUESTS = 6


class _Holder:
    """Each request waits until released; counts how many run at once."""

    target = messaging.Target(version='1.0')

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.done = 0
        self.release = threading.Event()

    def hold(self, ctxt) -> None:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.release.wait(30)
        with self._lock:
            self.running -= 1
            self.done += 1


@pytest.fixture
def started():
    transport = messaging.get_rpc_transport(CONF, url='inproc://')
    services = []

    def start(pool_size: int | None) -> tuple[_Holder, messaging.RPCClient]:
        topic = 'pool-%s' % uuid.uuid4().hex[:8]
        holder = _Holder()
        svc = service.Service(transport, topic, 'host-1', holder)
        svc.start(rpc_thread_pool_size=pool_size)
        services.append((svc, holder))
        client = rpc.get_client(transport, messaging.Target(
            topic=topic, server='host-1', version='1.0'))
        return holder, client

    yield start
    for svc, holder in services:
        holder.release.set()
        svc.stop()
    transport.cleanup()


@pytest.mark.parametrize('pool_size', [1, 2])
def test_a_pool_size_bounds_the_requests_worked_on_at_once(started,
                                                           pool_size):
    holder, client = started(pool_size)
    ctxt = lc_context.get_admin_context()
    for _ in range(REQUESTS):
        client.cast(ctxt, 'hold')
    wait_until(lambda: holder.running == pool_size, 10, 'the pool busy',
               interval=0.01)
    # The others wait for a thread, however long the first ones take.
    time.sleep(0.3)
    assert holder.running == pool_size
    holder.release.set()
    wait_until(lambda: holder.done == REQUESTS, 10, 'every request done',
               interval=0.01)
    assert holder.most_at_once == pool_size


def test_without_a_pool_size_the_messaging_option_applies(started):
    # oslo.messaging's [DEFAULT] executor_thread_pool_size (64) is more
    # than the requests sent: every one runs at once.
    holder, client = started(None)
    ctxt = lc_context.get_admin_context()
    for _ in range(REQUESTS):
        client.cast(ctxt, 'hold')
    wait_until(lambda: holder.running == REQUESTS, 10,
               'every request running', interval=0.01)
    holder.release.set()
    wait_until(lambda: holder.done == REQUESTS, 10, 'every request done',
               interval=0.01)
