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
from lifecycle.virt import driver as virt_driver

LOG = logging.getLogger(__name__)

NAME = 'lifecycle-compute'


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


def _start():
    deploy.check_transport()
    host = deploy.default_host()
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
    return deploy.main(NAME, argv, _start)


if __name__ == '__main__':
    sys.exit(main())
