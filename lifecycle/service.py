"""A service: one RPC server plus the periodic tasks of its manager."""

import threading
from collections.abc import Callable

import futurist
import oslo_messaging as messaging
from futurist import periodics
from oslo_log import log as logging

from lifecycle import rpc

LOG = logging.getLogger(__name__)


class Service:
    def __init__(self, transport: messaging.Transport, topic: str,
                 server: str, manager,
                 periodic_tasks: list[tuple[Callable[[], None], float]]
                 = ()) -> None:
        self.topic = topic
        self.server = server
        self.manager = manager
        self._rpc_server = rpc.get_server(
            transport, messaging.Target(topic=topic, server=server),
            [manager])
        self._periodic_tasks = [(task, interval)
                                for task, interval in periodic_tasks
                                if interval > 0]
        self._worker: periodics.PeriodicWorker | None = None
        self._worker_thread: threading.Thread | None = None

    def start(self) -> None:
        if hasattr(self.manager, 'init_host'):
            self.manager.init_host()
        self._rpc_server.start()
        if self._periodic_tasks:
            callables = [(periodics.periodic(interval, run_immediately=False)(
                _logged(task)), (), {})
                for task, interval in self._periodic_tasks]
            self._worker = periodics.PeriodicWorker(
                callables,
                executor_factory=lambda: futurist.SynchronousExecutor())
            self._worker_thread = threading.Thread(
                target=self._worker.start, name='periodic-%s' % self.server,
                daemon=True)
            self._worker_thread.start()
        LOG.info('Service %s on topic %s started', self.server, self.topic)

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker_thread.join()
        self._rpc_server.stop()
        self._rpc_server.wait()
        LOG.info('Service %s on topic %s stopped', self.server, self.topic)


def _logged(task: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            task()
        except Exception:
            LOG.exception('Periodic task %s failed',
                          getattr(task, '__name__', task))
    run.__name__ = getattr(task, '__name__', 'periodic_task')
    return run
