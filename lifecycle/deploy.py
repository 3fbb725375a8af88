"""How the parts are put together: shared by the all-in-one
(``lifecycle-aio``, everything in one process) and the separate services
(``lifecycle-api``, ``lifecycle-conductor``, ``lifecycle-compute``).

The builders take what differs between the two (transport, database, host
name, instance storage, libvirt driver, image source) as arguments and read
everything else from ``CONF``. The checks (:func:`open_database`,
:func:`check_transport`, :func:`require_image_dir`) are what the separate
services run at start so that a wrong deployment stops with one clear line
instead of failing on its first request.
"""

import logging as std_logging
import socket
import sys
from collections.abc import Callable

import oslo_messaging as messaging
from oslo_config import cfg
from oslo_db import exception as db_exc
from oslo_log import log as logging

from lifecycle import exception
from lifecycle.exception import StartupError
from lifecycle import image as image_sources
from lifecycle import resend
from lifecycle import service
from lifecycle import version
from lifecycle import storage
from lifecycle.compute import api as compute_api
from lifecycle.compute import manager as compute_manager
from lifecycle.compute import reconcile
from lifecycle.compute import rpcapi as compute_rpcapi
from lifecycle.conductor import manager as conductor_manager
from lifecycle.conductor import rpcapi as conductor_rpcapi
from lifecycle.conductor import scheduler
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import migration
from lifecycle.storage import paths

LOG = logging.getLogger(__name__)

EXIT_CANNOT_START = service.EXIT_CANNOT_START


def default_host() -> str:
    """``[DEFAULT] host``, else this machine's name (as Nova)."""
    return CONF.host or socket.gethostname()


# -- checks ---------------------------------------------------------------

def check_transport() -> None:
    """Separate services need a real message bus shared by all of them."""
    url = CONF.transport_url
    if not url:
        raise StartupError(reason='[DEFAULT] transport_url is not set '
                           '(e.g. rabbit://USER:PASS@HOST:5672/)')
    if url.startswith(('fake:', 'inproc:')):
        raise StartupError(reason='[DEFAULT] transport_url %s reaches only '
                           'services inside this process; separate services '
                           'need a shared message bus such as '
                           'rabbit://USER:PASS@HOST:5672/ (lifecycle-aio '
                           'runs everything in one process on inproc://)'
                           % url)


def open_database(service_name: str, *, single_process: bool = False,
                  check_schema: bool = True) -> db_api.Database:
    """The database of ``[database] connection``, checked.

    The separate services refuse SQLite unless ``[DEFAULT] allow_sqlite``
    (one machine only, one writer at a time) and, like every service, refuse
    a schema that is not at the head revision: ``lifecycle-manage db sync``
    is the operator's step, not a side effect of starting a service.
    """
    url = CONF.database.connection
    if not url:
        raise StartupError(reason='[database] connection is not set')
    if url.startswith('sqlite') and not single_process:
        if not CONF.allow_sqlite:
            raise StartupError(
                reason='[database] connection is a SQLite database, which '
                'the separate services cannot share across hosts; use '
                'PostgreSQL (postgresql+psycopg2://...) or MariaDB '
                '(mysql+pymysql://...), or set [DEFAULT] allow_sqlite = true '
                'to run them all on this one machine')
        LOG.warning('%s runs on SQLite (%s): every service must run on this '
                    'machine and writes are serialised; use PostgreSQL or '
                    'MariaDB for a real deployment', service_name, url)
    try:
        db = db_api.Database(url)
        if check_schema:
            _check_schema(db)
    except db_exc.DBError as e:
        raise StartupError(reason='cannot use the database: %s' % e) from e
    return db


def _check_schema(db: db_api.Database) -> None:
    if not CONF.debug:
        # Reading the revision makes alembic narrate at INFO.
        std_logging.getLogger('alembic').setLevel(std_logging.WARNING)
    current = migration.current_version(db)
    head = migration.head_version()
    if current == head:
        return
    db.dispose()
    manage = ' '.join(['lifecycle-manage'] + [
        '--config-file %s' % f for f in CONF.config_file or ['<file>']])
    raise StartupError(
        reason='the database schema is at revision %s but this release '
        'needs %s: run "%s db sync" first (the operator upgrades the schema; '
        'services never do)' % (current or 'none (empty database)', head,
                                manage))


def require_image_dir() -> str | None:
    """``[image] local_dir`` for the local image source (required: the API
    and every compute host must see one shared directory); None for
    Glance."""
    if CONF.image.source != 'local':
        return None
    if not CONF.image.local_dir:
        raise StartupError(
            reason='[image] source = local needs [image] local_dir, one '
            'image directory shared by the API and every compute host (or '
            'use [image] source = glance)')
    return CONF.image.local_dir


# -- defaults -------------------------------------------------------------

# Nova's default flavors of these names: (flavorid, vcpus, MiB, root GiB).
DEFAULT_FLAVORS = {'m1.tiny': ('1', 1, 512, 1),
                   'm1.small': ('2', 1, 2048, 20),
                   'm1.medium': ('3', 2, 4096, 40)}


def seed_default_flavors(db: db_api.Database,
                         only_if_empty: bool = False) -> list[str]:
    """Create the :data:`DEFAULT_FLAVORS` that are missing; the names
    created.

    A default whose name or flavor id is already taken is left out, so an
    operator's own flavors are never changed. ``only_if_empty``: create
    nothing when any flavor exists (``lifecycle-manage db sync`` seeds a new
    deployment, not one whose operator removed a default on purpose).
    """
    existing = db.flavor_get_all()
    if only_if_empty and existing:
        return []
    names = {f.name for f in existing}
    ids = {f.flavorid for f in existing}
    created = []
    for name, (flavorid, vcpus, ram, disk) in DEFAULT_FLAVORS.items():
        if name in names or flavorid in ids:
            continue
        try:
            db.flavor_create({'flavorid': flavorid, 'name': name,
                              'vcpus': vcpus, 'memory_mb': ram,
                              'root_gb': disk})
        except exception.FlavorExists:
            continue  # created meanwhile by another seeder
        created.append(name)
    return created


# -- RPC ------------------------------------------------------------------

def compute_topic() -> str:
    return CONF.rpc_topic_prefix + compute_rpcapi.TOPIC


def conductor_topic() -> str:
    return CONF.rpc_topic_prefix + conductor_rpcapi.TOPIC


def compute_rpc_client(
        transport: messaging.Transport) -> compute_rpcapi.ComputeAPI:
    return compute_rpcapi.ComputeAPI(transport, compute_topic())


def conductor_rpc_client(
        transport: messaging.Transport) -> conductor_rpcapi.ConductorAPI:
    return conductor_rpcapi.ConductorAPI(transport, conductor_topic())


# -- builders -------------------------------------------------------------

def build_image_service(local_dir: str | None):
    """The image source of ``[image] source``: the local directory
    ``local_dir`` (created if missing) or Glance (``local_dir`` unused)."""
    if CONF.image.source == 'local' and local_dir:
        paths.make_service_dir(local_dir)
    return image_sources.get_image_service(CONF, local_dir)


def build_compute_service(transport: messaging.Transport,
                          db: db_api.Database, host: str,
                          instances_path: str, driver, image_service, *,
                          vcpus: int | None = None,
                          memory_mb: int | None = None,
                          images_type: str | None = None,
                          storage_group: str | None = None
                          ) -> service.Service:
    """The compute service of ``host`` (not started).

    ``instances_path`` is the host's view of its storage group's shared
    storage; ``vcpus``/``memory_mb`` default to ``[compute]`` (0: what the
    hypervisor reports). The backend is ``images_type``, else the one of
    ``storage_group`` (``rbd`` for a Ceph group, else ``[libvirt]
    images_type``).
    """
    backend = storage.load_backend(
        images_type or storage.backend_name(storage_group),
        paths.make_service_dir(instances_path), storage_group=storage_group)
    manager = compute_manager.ComputeManager(
        host, db, driver, backend, image_service,
        vcpus=CONF.compute.vcpus if vcpus is None else vcpus,
        memory_mb=CONF.compute.memory_mb if memory_mb is None else memory_mb)
    reconciler = reconcile.Reconciler(
        host, db, driver, CONF.compute.orphan_domain_grace_period)
    resender = resend.Resender(db, compute_rpc_client(transport),
                               conductor_rpc_client(transport))
    return service.Service(
        transport, compute_topic(), host, manager,
        [(manager.report_capacity, CONF.compute.report_interval),
         (manager.poll_shelved_instances, CONF.shelved_poll_interval),
         (reconciler.run, CONF.compute.reconcile_interval)],
        on_start=[lambda: resender.resend_own('compute', host)])


def build_conductor_service(transport: messaging.Transport,
                            db: db_api.Database,
                            server: str = 'conductor') -> service.Service:
    """The conductor (not started); ``server`` names this conductor on the
    bus (several conductors share the topic's work)."""
    manager = conductor_manager.ConductorManager(
        db, compute_rpc_client(transport), scheduler.Scheduler(db),
        host=server)
    resender = resend.Resender(db, compute_rpc_client(transport),
                               conductor_rpc_client(transport))
    return service.Service(
        transport, conductor_topic(), server, manager,
        [(manager.escalate_retained_disks, CONF.shelve.escalation_interval),
         (manager.end_stuck_tasks, CONF.stuck_task_interval),
         (resender.resend_stale, CONF.request_resend_interval)],
        on_start=[lambda: resender.resend_own('conductor')])


class API:
    """The REST API and the compute API behind it (not started)."""

    def __init__(self, transport: messaging.Transport, db: db_api.Database,
                 image_service, host: str | None = None,
                 port: int | None = None) -> None:
        # Imported here: lifecycle-compute and lifecycle-conductor import
        # this module but serve no REST API, whose imports (keystonemiddleware,
        # the schemas) cost about 0.4 s at each start.
        from lifecycle import api as rest_api
        from lifecycle.api import wsgi
        self.compute_api = compute_api.API(
            db, image_service, conductor_rpc_client(transport),
            compute_rpc_client(transport))
        self.server = wsgi.APIServer(
            rest_api.build_app(self.compute_api, db, image_service),
            CONF.api.host if host is None else host,
            CONF.api.port if port is None else port)

    @property
    def url(self) -> str:
        host = self.server.host
        if ':' in host:
            host = '[%s]' % host
        return 'http://%s:%d/v2.1' % (host, self.server.port)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


def build_api(transport: messaging.Transport, db: db_api.Database,
              image_service, host: str | None = None,
              port: int | None = None) -> API:
    return API(transport, db, image_service, host, port)


# -- command-line plumbing --------------------------------------------------

#: The exit status text of every service's ``--help``.
SERVICE_EPILOG = ('Exit status: 0 after a clean stop (SIGTERM or SIGINT); '
                  '%d when the service cannot start (bad configuration, '
                  'database schema not at head -- run "lifecycle-manage db '
                  'sync" --, message bus or hypervisor unreachable; the '
                  'reason is logged and printed).' % EXIT_CANNOT_START)


def parse_config(argv: list[str] | None, default_transport_url: str | None
                 = None, name: str | None = None,
                 description: str | None = None) -> None:
    """Parse the command line and config files, set up logging.

    ``name`` and ``description``: the command's ``--help`` (which also
    lists the exit status and, with ``--version``, the release).
    """
    logging.register_options(CONF)
    if default_transport_url:
        CONF.set_default('transport_url', default_transport_url)
    CONF(sys.argv[1:] if argv is None else argv, project='lifecycle',
         prog=name, version=version.version_string(),
         description=description, epilog=SERVICE_EPILOG)
    logging.setup(CONF, 'lifecycle')


def main(name: str, argv: list[str] | None,
         start: Callable[[], tuple[Callable[[], None], str]],
         description: str | None = None) -> int:
    """A service command: :func:`parse_config`, then :func:`run`."""
    try:
        parse_config(argv, name=name, description=description)
    except cfg.Error as e:
        print('%s: %s' % (name, e), file=sys.stderr)
        return EXIT_CANNOT_START
    return run(name, start)


def run(name: str,
        start: Callable[[], tuple[Callable[[], None], str]]) -> int:
    """Start a service with ``start()`` under the launcher of
    :func:`lifecycle.service.run` (oslo.service, threading backend: SIGHUP
    reloads the mutable options, SIGTERM/SIGINT stop gracefully); returns
    the process exit status (0, or :data:`EXIT_CANNOT_START`)."""
    return service.run(name, start)
