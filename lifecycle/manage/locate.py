"""Locates what one run of ``lifecycle-manage`` looks at: the database, the
storage groups' instance storage and the libvirt domains of some hosts.

Two kinds of configuration are understood:

all-in-one
    The file given to ``lifecycle-aio`` (any ``[aio]`` option set in it).
    Every storage group of ``[aio] hosts`` is checked at
    ``<[aio] state_dir>/storage/<group>``, and the domains of every host of
    ``[aio] hosts`` on the one ``[libvirt] connection_uri``. Without
    ``[database] connection`` the all-in-one's SQLite file
    ``<state_dir>/lifecycle.sqlite`` is used.

compute host of a multi-host deployment
    The file given to ``lifecycle-compute`` on that host. This host is
    ``[DEFAULT] host`` (else the machine's name, as the compute service
    does); its storage group is the ``storage_group`` of its aggregates in
    the database, its view of that group's storage is ``[DEFAULT]
    instances_path``, its domains are those on ``[libvirt] connection_uri``
    whose metadata names this host. Run it on each compute host (once per
    storage group is enough for the disk checks, but the domain check is
    per host).
"""

import dataclasses
import os
import socket

from oslo_config import cfg
from oslo_log import log as logging

from lifecycle import exception
from lifecycle import storage as storage_backends
from lifecycle.conf import aio as aio_conf
from lifecycle.db import api as db_api
from lifecycle.db import migration
from lifecycle.manage import CommandFailed
from lifecycle.manage import UsageError
from lifecycle.virt import driver as virt_driver

LOG = logging.getLogger(__name__)

AIO = 'all-in-one'
HOST = 'compute host'


@dataclasses.dataclass(frozen=True)
class Storage:
    """One storage group's instance storage as seen from here."""
    group: str | None        # None: a host in no storage group
    path: str                # the group's instances_path
    hosts: tuple[str, ...]   # the hosts of the group in this scope


def _aio_configured(conf: cfg.ConfigOpts) -> bool:
    """True when some ``[aio]`` option is set (configuration file, command
    line, environment, or an override in-process), not just defaulted."""
    for opt_name in conf.aio:
        location = conf.get_location(opt_name, 'aio')
        if location is not None and (
                location.location.is_user_controlled or
                location.location == cfg.Locations.set_override):
            return True
    return False


def database_url(conf: cfg.ConfigOpts, must_exist: bool = True) -> str:
    """``[database] connection``, else (all-in-one) its SQLite file.

    ``must_exist``: a default SQLite file that is not there is a usage
    error rather than an empty database created on the spot.
    """
    if conf.database.connection:
        return conf.database.connection
    if _aio_configured(conf):
        path = os.path.join(conf.aio.state_dir, 'lifecycle.sqlite')
        if must_exist and not os.path.exists(path):
            raise UsageError('no all-in-one database at %s (set [database] '
                             'connection or [aio] state_dir)' % path)
        return 'sqlite:///%s' % path
    raise UsageError('[database] connection is not set')


def require_schema(db: db_api.Database) -> None:
    """CommandFailed unless ``db`` has the project's schema."""
    if migration.current_version(db) is None:
        db.dispose()
        raise CommandFailed('the database %s has no schema: run '
                            '"lifecycle-manage db sync" first' % db.url)


class Deployment:
    """The scope of a command, read from the configuration."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self.mode = AIO if _aio_configured(conf) else HOST
        self.db = db_api.Database(database_url(conf))
        self._driver: virt_driver.LibvirtDriver | None = None
        self._storages: list[Storage] | None = None
        require_schema(self.db)
        if self.mode == AIO:
            try:
                self.aio_hosts = aio_conf.parse_hosts(conf.aio.hosts)
            except exception.InvalidConfiguration as e:
                raise UsageError(e.format_message()) from e
            self.hosts = sorted(self.aio_hosts)
        else:
            self.hosts = [conf.host or socket.gethostname()]

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
        self.db.dispose()

    def describe(self) -> str:
        return '%s (hosts %s)' % (self.mode, ', '.join(self.hosts))

    # -- storage ------------------------------------------------------------

    @property
    def storages(self) -> list[Storage]:
        if self._storages is None:
            self._storages = self._find_storages()
        return self._storages

    def _find_storages(self) -> list[Storage]:
        if self.mode == AIO:
            groups: dict[str, list[str]] = {}
            for host, group in sorted(self.aio_hosts.items()):
                groups.setdefault(group, []).append(host)
            return [Storage(group, self.aio_storage_path(group),
                            tuple(hosts))
                    for group, hosts in sorted(groups.items())]
        host = self.hosts[0]
        try:
            group = self.db.storage_group_of_host(host)
        except exception.InvalidConfiguration as e:
            raise CommandFailed(e.format_message()) from e
        if not self.conf.instances_path:
            raise UsageError('[DEFAULT] instances_path is not set')
        return [Storage(group, os.path.abspath(self.conf.instances_path),
                        (host,))]

    def aio_storage_path(self, group: str) -> str:
        # As lifecycle-aio lays it out (AllInOne.storage_path).
        return os.path.join(os.path.abspath(self.conf.aio.state_dir),
                            'storage', group)

    def storage_path(self, group: str | None,
                     host: str | None = None) -> str | None:
        """Where the storage of ``group`` (or, with no group, of ``host``)
        is, from the configuration, else as its hosts report it."""
        for storage in self.storages:
            if storage.group == group and (group is not None or
                                           host in storage.hosts):
                return storage.path
        if group is None:
            return None
        reported = self.db.storage_group_paths(group)
        return reported[0] if reported else None

    def backend_name(self, group: str | None) -> str:
        """:func:`lifecycle.storage.backend_name` of this configuration."""
        return storage_backends.backend_name(group, self.conf)

    def backend(self, path: str, group: str | None = None
                ) -> storage_backends.StorageBackend:
        """The storage backend of ``group`` at ``path``
        (:meth:`backend_name`)."""
        return storage_backends.load_backend(
            self.backend_name(group), path, storage_group=group,
            conf=self.conf)

    # -- hypervisor ---------------------------------------------------------

    @property
    def driver(self) -> virt_driver.LibvirtDriver:
        """The libvirt connection (opened on first use); raises
        HypervisorUnavailable."""
        if self._driver is None:
            driver = virt_driver.LibvirtDriver(
                self.conf.libvirt.connection_uri,
                self.conf.libvirt.virt_type)
            driver.connect()
            self._driver = driver
        return self._driver
