"""``lifecycle-aio``: API, conductor and the compute hosts of ``[aio]
hosts`` in one process, over the in-process ``inproc://`` transport and a
SQLite file by default."""

import os
import sys

from oslo_config import cfg
from oslo_log import log as logging

from lifecycle import deploy
from lifecycle import names
from lifecycle import rpc
from lifecycle import service
from lifecycle.conf import CONF
from lifecycle.conf import aio as aio_conf
from lifecycle.db import migration
from lifecycle.image import local as local_image
from lifecycle.storage import paths
from lifecycle.virt import driver as virt_driver

LOG = logging.getLogger(__name__)
DESCRIPTION = (
    'The embedded all-in-one of shelve-lifecycle: the REST API, the '
    'conductor and one compute service per [aio] hosts entry in one '
    'process, over the in-process inproc:// transport and a SQLite '
    'database under [aio] '
    'state_dir by default; creates the default flavors, one aggregate per '
    'storage group and a default image. Prints "lifecycle-aio ready at URL" '
    'when it serves. For trying the project and for tests; separate '
    'services are lifecycle-api, lifecycle-conductor, lifecycle-compute.')

DEFAULT_FLAVORS = deploy.DEFAULT_FLAVORS


class AllInOne:
    """The embedded deployment; tests use it as their harness."""

    def __init__(self) -> None:
        # One process on the loopback interface: Nova's noauth2 unless the
        # configuration says otherwise.
        CONF.set_default('auth_strategy', 'noauth2', group='api')
        self.hosts = aio_conf.parse_hosts(CONF.aio.hosts)
        self.state_dir = paths.make_service_dir(CONF.aio.state_dir)
        self.services: list[service.Service] = []
        self.api: deploy.API | None = None

    def storage_path(self, group: str) -> str:
        return os.path.join(self.state_dir, 'storage', group)

    def start(self) -> 'AllInOne':
        if not CONF.database.connection:
            CONF.set_override('connection', 'sqlite:///%s' % os.path.join(
                self.state_dir, 'lifecycle.sqlite'), group='database')
        # One process: SQLite is fine, and the schema is ours to upgrade.
        self.db = deploy.open_database('lifecycle-aio', single_process=True,
                                       check_schema=False)
        migration.sync(self.db)
        self.images = deploy.build_image_service(
            CONF.image.local_dir or os.path.join(self.state_dir, 'images'))
        self.default_image = self._ensure_defaults()
        self.driver = virt_driver.open_driver(
            CONF.libvirt.connection_uri, CONF.libvirt.virt_type,
            fall_back_to_test=CONF.libvirt.fall_back_to_test_driver)

        self.transport = rpc.get_transport(CONF)
        for host, group in self.hosts.items():
            self.services.append(deploy.build_compute_service(
                self.transport, self.db, host, self.storage_path(group),
                self.driver, self.images, vcpus=CONF.aio.host_vcpus,
                memory_mb=CONF.aio.host_memory_mb, storage_group=group))
        self.services.append(
            deploy.build_conductor_service(self.transport, self.db))
        for svc in self.services:
            svc.start(rpc_thread_pool_size=CONF.aio.executor_thread_pool_size)

        self.api = deploy.build_api(self.transport, self.db, self.images)
        self.compute_api = self.api.compute_api
        self.api.start()
        LOG.info('lifecycle-aio: API at %s, hosts %s, libvirt %s (%s)',
                 self.url,
                 ', '.join('%s:%s' % hg for hg in self.hosts.items()),
                 self.driver.uri, self.driver.virt_type)
        return self

    @property
    def url(self) -> str:
        return self.api.url

    def _ensure_defaults(self) -> dict:
        """Default flavors, one aggregate per storage group, default image."""
        deploy.seed_default_flavors(self.db)
        for group in sorted(set(self.hosts.values())):
            existing = {a.metadata_dict.get(names.AGGREGATE_STORAGE_GROUP): a
                        for a in self.db.aggregate_get_all()}
            aggregate = existing.get(group) or self.db.aggregate_create(
                'storage-%s' % group, {names.AGGREGATE_STORAGE_GROUP: group})
            for host in sorted(h for h, g in self.hosts.items()
                               if g == group):
                if host not in aggregate.host_names:
                    self.db.aggregate_add_host(aggregate.id, host)
        image = self.images.find_by_name(CONF.image.default_image_name)
        if image is None:
            blank = os.path.join(self.state_dir, 'default-image.qcow2')
            local_image.make_blank_image(
                blank, CONF.image.default_image_size_mb)
            image = self.images.create(CONF.image.default_image_name, blank)
            os.unlink(blank)
        return image

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None
        for svc in reversed(self.services):
            svc.stop()
        self.services = []
        self.transport.cleanup()
        self.db.dispose()


def _start():
    aio = AllInOne().start()
    return aio.stop, 'at %s' % aio.url


def main(argv: list[str] | None = None) -> int:
    try:
        deploy.parse_config(argv, default_transport_url='inproc://',
                            name='lifecycle-aio', description=DESCRIPTION)
    except cfg.Error as e:
        print('lifecycle-aio: %s' % e, file=sys.stderr)
        return deploy.EXIT_CANNOT_START
    return deploy.run('lifecycle-aio', _start)


if __name__ == '__main__':
    sys.exit(main())
