"""The all-in-one's message bus: in memory, its listeners woken by delivery.

oslo.messaging's ``fake://`` driver keeps messages in memory too, but its
listeners look at their queues every 50 ms, so every cast and call in the
all-in-one waited 25 ms on average for nobody (about 60 ms of a single
unshelve: the API's cast to the conductor, the conductor's call to the
compute). This driver (``inproc://``) is that driver with listeners that
sleep until a message for one of their topics is delivered, or they are
stopped. Messages reach only listeners of the same process, as with
``fake://``.

oslo.messaging has no public interface for drivers: this builds on its
fake driver's module, which is why ``tests/unit/test_rpc_inproc.py`` runs
casts, calls, fan-outs and notifications through it against the installed
release.
"""

import collections
import threading
import time

import oslo_messaging
from oslo_messaging._drivers import base
from oslo_messaging._drivers import impl_fake


class _Wakeups:
    """The listeners' events by (exchange, topic), set on a delivery."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[tuple, set] = collections.defaultdict(set)

    def register(self, keys: list[tuple], event: threading.Event) -> None:
        with self._lock:
            for key in keys:
                self._events[key].add(event)

    def unregister(self, keys: list[tuple], event: threading.Event) -> None:
        with self._lock:
            for key in keys:
                self._events[key].discard(event)
                if not self._events[key]:
                    del self._events[key]

    def wake(self, exchange: str, topic: str) -> None:
        with self._lock:
            events = list(self._events.get((exchange, topic), ()))
        for event in events:
            event.set()


# One per process, as the exchanges are (a listener hears a message sent
# through another transport object of the same URL).
_WAKEUPS = _Wakeups()


class _Exchange(impl_fake.FakeExchange):
    def deliver_message(self, topic, *args, **kwargs):
        # A requeued message comes back through here too.
        super().deliver_message(topic, *args, **kwargs)
        _WAKEUPS.wake(self.name, topic)


class _ExchangeManager(impl_fake.FakeExchangeManager):
    # Exchanges of their own: fake:// transports of the same process keep
    # theirs in the parent class, without wakeups.
    _exchanges_lock = threading.Lock()
    _exchanges: dict = {}

    def get_exchange(self, name):
        if name is None:
            name = self._default_exchange
        with self._exchanges_lock:
            exchange = self._exchanges.get(name)
            if exchange is None:
                exchange = self._exchanges[name] = _Exchange(name)
            return exchange


class _Listener(impl_fake.FakeListener):
    def __init__(self, exchange_manager, targets, pool=None) -> None:
        super().__init__(exchange_manager, targets, pool)
        self._arrived = threading.Event()
        self._keys = [(exchange_manager.get_exchange(t.exchange).name,
                       t.topic) for t in targets]
        _WAKEUPS.register(self._keys, self._arrived)

    @base.batch_poll_helper
    def poll(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stopped.is_set():
            # Cleared before looking: a delivery after the look sets it
            # again, so the wait below cannot miss it.
            self._arrived.clear()
            message = self._take()
            if message is not None:
                return message
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self._arrived.wait(left)
        return None

    def _take(self):
        for target in self._targets:
            exchange = self._exchange_manager.get_exchange(target.exchange)
            ctxt, message, reply_q, requeue = exchange.poll(target,
                                                            self._pool)
            if message is not None:
                return impl_fake.FakeIncomingMessage(ctxt, message, reply_q,
                                                     requeue)
        return None

    def stop(self) -> None:
        super().stop()
        self._arrived.set()

    def cleanup(self) -> None:
        _WAKEUPS.unregister(self._keys, self._arrived)
        super().cleanup()


class InProcessDriver(impl_fake.FakeDriver):
    """``inproc://``: the fake driver, its listeners woken by delivery."""

    def __init__(self, conf, url, default_exchange=None,
                 allowed_remote_exmods=None) -> None:
        super().__init__(conf, url, default_exchange, allowed_remote_exmods)
        self._exchange_manager = _ExchangeManager(default_exchange)

    def listen(self, target, batch_size, batch_timeout):
        exchange = target.exchange or self._default_exchange
        listener = _Listener(self._exchange_manager, [
            oslo_messaging.Target(topic=target.topic, server=target.server,
                                  exchange=exchange),
            oslo_messaging.Target(topic=target.topic, exchange=exchange)])
        return base.PollStyleListenerAdapter(listener, batch_size,
                                             batch_timeout)

    def listen_for_notifications(self, targets_and_priorities, pool,
                                 batch_size, batch_timeout):
        targets = [oslo_messaging.Target(topic='%s.%s' % (target.topic,
                                                          priority),
                                         exchange=target.exchange)
                   for target, priority in targets_and_priorities]
        listener = _Listener(self._exchange_manager, targets, pool)
        return base.PollStyleListenerAdapter(listener, batch_size,
                                             batch_timeout)
