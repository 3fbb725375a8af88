"""``lifecycle-compute``: the compute service of one host (``[DEFAULT]
host``): runs its guests on ``[libvirt] connection_uri`` and keeps their
disks in ``[DEFAULT] instances_path``, the host's mount of its storage
group's shared storage. Reports capacity and a heartbeat every ``[compute]
report_interval`` seconds.

    lifecycle-compute --config-file /etc/lifecycle/lifecycle-compute.conf
"""

import sys

from oslo_log import log as logging

from lifecycle import deploy
from lifecycle import exception
from lifecycle import rpc
from lifecycle.conf import CONF
from lifecycle.storage import paths
from lifecycle.virt import driver as virt_driver

LOG = logging.getLogger(__name__)

NAME = 'lifecycle-compute'
DESCRIPTION = (
    'The compute service of one host ([DEFAULT] host, else the machine '
    'name): runs its guests on [libvirt] connection_uri, keeps their disks '
    'in [DEFAULT] instances_path (the host\'s mount of its storage group\'s '
    'shared storage, the same path on every host of the group) and reports '
    'capacity and a heartbeat every [compute] report_interval seconds. '
    'Prints "lifecycle-compute ready ..." when it serves.')


def _storage_group(db, host: str) -> tuple[str | None, str]:
    """(the host's storage group or None, how to describe it)."""
    try:
        group = db.storage_group_of_host(host)
    except exception.InvalidConfiguration as e:
        LOG.warning('%s', e.format_message())
        return None, 'ambiguous'
    if group is None:
        LOG.info('Host %s is in no storage group yet: until an aggregate '
                 'with storage_group metadata holds it, disks it shelves '
                 'can be unshelved only on this host', host)
    return group, group or 'none'


def _check_instances_path(host: str) -> None:
    """Usable, and mounted where the rest of the group mounts it."""
    try:
        paths.check_storage_root(CONF.instances_path, host)
    except exception.StorageError as e:
        raise exception.StartupError(reason=e.format_message()) from e


def _warn_test_driver() -> None:
    if CONF.libvirt.connection_uri.startswith('test:'):
        LOG.warning(
            '[libvirt] connection_uri %s is libvirt\'s test driver: its '
            'domains live inside this process and die with it, so after a '
            'restart the reconciler ([compute] reconcile_interval) finds '
            'every active instance of this host without a domain and sets '
            'it to ERROR (DomainVanished). Use it for tests only; a real '
            'compute host uses qemu:///system',
            CONF.libvirt.connection_uri)


def _start():
    deploy.check_transport()
    host = deploy.default_host()
    _warn_test_driver()
    _check_instances_path(host)
    images = deploy.build_image_service(deploy.require_image_dir())
    db = deploy.open_database(NAME)
    # No fallback to the test driver here: a compute host that cannot reach
    # its hypervisor must not pretend to run guests.
    driver = virt_driver.open_driver(CONF.libvirt.connection_uri,
                                     CONF.libvirt.virt_type)
    transport = rpc.get_transport(CONF)
    group, described = _storage_group(db, host)
    # The group picks per-group storage settings ([rbd:<group>] of a Ceph
    # group); a host in no group (yet) uses [libvirt] images_type, [rbd].
    svc = deploy.build_compute_service(
        transport, db, host, CONF.instances_path, driver, images,
        storage_group=group)
    svc.start()

    def stop() -> None:
        svc.stop()
        transport.cleanup()
        driver.close()
        db.dispose()
    return stop, 'as host %s (storage group %s, instances_path %s, %s)' % (
        host, described, CONF.instances_path, driver.uri)


def main(argv: list[str] | None = None) -> int:
    return deploy.main(NAME, argv, _start, DESCRIPTION)


if __name__ == '__main__':
    sys.exit(main())
