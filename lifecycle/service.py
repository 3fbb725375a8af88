"""A service: one RPC server plus the periodic tasks of its manager; and
the launcher every service command runs under (:func:`main`)."""

import signal
import sys
import threading
import time
from collections.abc import Callable

import futurist
import oslo_messaging as messaging
from futurist import periodics
from oslo_log import log as logging

from oslo_config import cfg
from oslo_service import backend as service_backend

from lifecycle import exception
from lifecycle import policy
from lifecycle import rpc
from lifecycle.conf import CONF

LOG = logging.getLogger(__name__)

# Exit status of a service that cannot start (bad configuration, database
# not migrated, hypervisor unreachable), as lifecycle-manage's usage error.
EXIT_CANNOT_START = 2

_SIGNAL_POLL_INTERVAL = 0.2


class Service:
    def __init__(self, transport: messaging.Transport, topic: str,
                 server: str, manager,
                 periodic_tasks: list[tuple[Callable[[], None], float]]
                 = (), on_start: list[Callable[[], None]] = ()) -> None:
        """``on_start``: called once the RPC server takes requests (after
        the manager's ``init_host``)."""
        self.topic = topic
        self.server = server
        self.manager = manager
        self._rpc_server = rpc.get_server(
            transport, messaging.Target(topic=topic, server=server),
            [manager])
        self._periodic_tasks = [(task, interval)
                                for task, interval in periodic_tasks
                                if interval > 0]
        self._on_start = list(on_start)
        self._worker: periodics.PeriodicWorker | None = None
        self._worker_thread: threading.Thread | None = None

    def start(self, rpc_thread_pool_size: int | None = None) -> None:
        """``rpc_thread_pool_size``: the RPC server's worker threads,
        instead of ``[DEFAULT] executor_thread_pool_size``."""
        if hasattr(self.manager, 'init_host'):
            self.manager.init_host()
        self._rpc_server.start(override_pool_size=rpc_thread_pool_size)
        for hook in self._on_start:
            _logged(hook)()
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


# -- the launcher ---------------------------------------------------------

def _launched(stop: Callable[[], None]):
    """What was started, as an oslo.service ``ServiceBase``: ``stop`` on
    SIGTERM, ``reset`` (after the mutable options were reloaded) on
    SIGHUP."""
    base = service_backend.get_component('ServiceBase')

    class Launched(base):
        def __init__(self) -> None:
            self._stopped = False

        def start(self) -> None:
            """Started already (its start could fail with a clear exit
            status, which a launcher thread cannot give)."""

        def stop(self, graceful: bool = False) -> None:
            if not self._stopped:
                self._stopped = True
                stop()

        def wait(self) -> None:
            pass

        def reset(self) -> None:
            # The policy file option may have changed with the mutable
            # options; oslo.policy rereads a changed file by itself.
            policy.reset()
            LOG.info('Reloaded the mutable options and the policy')

    return Launched()


def run(name: str,
        start: Callable[[], tuple[Callable[[], None], str]]) -> int:
    """Start a service with ``start()``, which returns its stop function and
    where it serves, under oslo.service's threading ``Launcher``; print
    ``<name> ready <where>`` on stdout; then, as Nova's services:

    * SIGHUP reloads the mutable options of the configuration files and the
      logging configuration (``restart_method = mutate``) and resets the
      policy, without stopping anything;
    * SIGTERM or SIGINT stop the service: RPC servers finish the requests
      they are handling, the API its connections; an operation the process
      does not finish is a persisted flow, resumed by the next start.

    oslo.service's own ServiceLauncher of the threading backend forks a
    worker process (cotyledon) whose SIGHUP restarts it; one process that
    keeps running is what the flows, the ready line and the exit status
    rely on, so the signals are handled here.

    Returns the exit status: 0 after a clean stop,
    :data:`EXIT_CANNOT_START` when the service could not start.
    """
    # The handlers only record the signal: Event.set() in a signal handler
    # can deadlock when the signal lands while the main thread is inside
    # Event.wait() holding the event's lock.
    received: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, _frame: received.append(signum))
    try:
        stop, description = start()
        message = None
    except (exception.LifecycleException, cfg.Error) as e:
        message = (e.format_message()
                   if isinstance(e, exception.LifecycleException) else str(e))
    if message is not None:
        LOG.error('%s cannot start: %s', name, message)
        if CONF.log_file or CONF.log_dir:
            # The log went to a file: tell whoever started the command too.
            print('%s cannot start: %s' % (name, message), file=sys.stderr)
        return EXIT_CANNOT_START
    launcher = service_backend.get_component('Launcher')(
        CONF, restart_method='mutate')
    launcher.launch_service(_launched(stop))
    LOG.info('%s ready %s', name, description)
    print('%s ready %s' % (name, description), flush=True)
    while True:
        while not received:
            time.sleep(_SIGNAL_POLL_INTERVAL)
        signum = received.pop(0)
        if signum != signal.SIGHUP:
            break
        LOG.info('%s reloading its configuration on SIGHUP', name)
        try:
            launcher.restart()
        except Exception:
            LOG.exception('%s could not reload its configuration', name)
    LOG.info('%s stopping on signal %d', name, signum)
    launcher.stop()
    return 0

