"""A Cinder volume's connection on this compute host: what the host tells
Cinder about itself, and how the export Cinder answers with becomes the
domain's root disk.

* The connector is os-brick's ``get_connector_properties`` (host, ip,
  iSCSI initiator name from ``/etc/iscsi/initiatorname.iscsi``, NVMe host
  NQN, system uuid, multipath, ...), read through os-brick's privsep
  daemon (:mod:`lifecycle.privsep`).
* ``rbd`` connections (Cinder's RBD driver) become a libvirt network disk:
  QEMU's own RBD client reaches the image, nothing is attached on the host,
  so there is nothing to disconnect either. The disk is built by
  :func:`lifecycle.virt.domain_xml.rbd_disk`, the same code as the ``rbd``
  storage backend's root disks (cephx ``<auth>`` with a libvirt secret).
* Block protocols (:data:`BLOCK_PROTOCOLS`: ``iscsi``) are connected by
  os-brick's connector for the protocol (``iscsiadm`` login, SCSI scan),
  which gives the host block device the domain opens; disconnecting logs
  out and removes the device.

Every other ``driver_volume_type`` is refused with a message naming the
accepted ones, before anything is attached.
"""

import dataclasses

from os_brick import exception as brick_exception
from os_brick import initiator
from os_brick.initiator import connector as brick_connector
from oslo_concurrency import processutils
from oslo_log import log as logging

from lifecycle import exception
from lifecycle.conf import CONF
from lifecycle import privsep
from lifecycle.privsep import block
from lifecycle.virt import domain_xml

LOG = logging.getLogger(__name__)

RBD = 'rbd'
# Cinder's driver_volume_type -> os-brick's protocol, for the protocols
# attached as host block devices. Only what can be tested on a host with
# the initiator (iSCSI: open-iscsi); Fibre Channel and NVMe-oF go through
# the same code once they are.
BLOCK_PROTOCOLS = {'iscsi': initiator.ISCSI}
# What a block connection must name for os-brick to find its target.
_REQUIRED = {'iscsi': (('target_portal', 'target_portals'),
                       ('target_iqn', 'target_iqns'))}
_BRICK_ERRORS = (brick_exception.BrickException,
                 processutils.ProcessExecutionError, OSError)


@dataclasses.dataclass(frozen=True)
class VolumeDisk:
    """The root disk of a volume-backed instance on this host: a block
    device path or a :class:`~lifecycle.virt.domain_xml.NetworkDisk`
    (``dataclasses.asdict`` keeps it JSON-able for the flows' store)."""
    path: 'str | domain_xml.NetworkDisk'
    format: str = 'raw'


def supported_protocols() -> list[str]:
    return sorted([RBD, *BLOCK_PROTOCOLS])


def _root_helper() -> str:
    return ' '.join(privsep.root_helper()) or 'sudo'


def connector_properties(host: str) -> dict:
    """This host as Cinder's ``attachment_update`` wants it."""
    privsep.init()
    return brick_connector.get_connector_properties(
        _root_helper(), CONF.volume.my_ip, CONF.volume.use_multipath,
        CONF.volume.enforce_multipath, host=host)


def _invalid(volume_id: str, kind: str | None, reason: str
             ) -> exception.InvalidVolume:
    return exception.InvalidVolume(
        reason='volume %s is exported as %r: %s' % (volume_id, kind, reason))


def _rbd_disk(data: dict, volume_id: str) -> domain_xml.NetworkDisk:
    name = data.get('name') or ''
    pool, _sep, image = name.partition('/')
    if not pool or not image:
        raise _invalid(volume_id, RBD, 'no pool/image name (%r)' % name)
    hosts, ports = data.get('hosts') or [], data.get('ports') or []
    if not hosts:
        raise _invalid(volume_id, RBD, 'the connection names no Ceph '
                       'monitor (hosts is empty)')
    if len(hosts) != len(ports):
        raise _invalid(volume_id, RBD, '%d monitor hosts but %d ports'
                       % (len(hosts), len(ports)))
    user = secret = None
    if data.get('auth_enabled'):
        user = CONF.volume.rbd_user or data.get('auth_username')
        secret = CONF.volume.rbd_secret_uuid or data.get('secret_uuid')
        if not user or not secret:
            raise _invalid(volume_id, RBD, 'cephx is enabled but no client '
                           'id and libvirt secret are known (set [volume] '
                           'rbd_user and rbd_secret_uuid, or Cinder\'s '
                           'rbd_user and rbd_secret_uuid)')
    try:
        monitors = [(host, int(port)) for host, port in zip(hosts, ports,
                                                          strict=True)]
        return domain_xml.rbd_disk(pool, image, monitors,
                                   'rbd:%s' % name, user=user,
                                   secret_uuid=secret)
    except (ValueError, TypeError, exception.InvalidInput) as e:
        raise _invalid(volume_id, RBD, str(e)) from e


def _check_block_data(kind: str, data: dict, volume_id: str) -> None:
    for alternatives in _REQUIRED.get(kind, ()):
        if not any(data.get(key) for key in alternatives):
            raise _invalid(volume_id, kind, 'the connection names no %s'
                           % ' or '.join(alternatives))


def _brick(kind: str):
    privsep.init()
    return brick_connector.InitiatorConnector.factory(
        BLOCK_PROTOCOLS[kind], _root_helper(),
        use_multipath=CONF.volume.use_multipath,
        device_scan_attempts=CONF.volume.device_scan_attempts)


def connect(connection_info: dict, volume_id: str, host: str) -> VolumeDisk:
    """The root disk for ``connection_info`` (``driver_volume_type`` and
    ``data``); block protocols are connected here first. InvalidVolume for
    a connection this host cannot use (nothing attached),
    VolumeConnectionFailed when os-brick fails."""
    kind = connection_info.get('driver_volume_type')
    data = connection_info.get('data') or {}
    if kind == RBD:
        disk = _rbd_disk(data, volume_id)
        LOG.info('Volume %s is RBD image %s: a network disk, nothing to '
                 'connect on %s', volume_id, disk.name, host)
        return VolumeDisk(disk)
    if kind not in BLOCK_PROTOCOLS:
        raise _invalid(volume_id, kind, 'this service attaches %s volumes '
                       'only' % ', '.join(supported_protocols()))
    _check_block_data(kind, data, volume_id)
    try:
        device = _brick(kind).connect_volume(data)
        path = device['path']
        size = block.device_size(path)
    except (*_BRICK_ERRORS, KeyError, ValueError) as e:
        raise exception.VolumeConnectionFailed(
            volume_id=volume_id, host=host,
            reason=exception.describe(e)) from e
    LOG.info('Volume %s connected on %s over %s as %s (%d bytes)',
             volume_id, host, kind, path, size)
    return VolumeDisk(path)


def disconnect(connection_info: dict, volume_id: str, host: str) -> None:
    """Undo :func:`connect` (the guest is gone): block devices are removed
    and their sessions logged out; network disks need nothing. A
    connection this host could not have connected is left alone."""
    kind = connection_info.get('driver_volume_type')
    if kind not in BLOCK_PROTOCOLS:
        return
    data = connection_info.get('data') or {}
    try:
        _check_block_data(kind, data, volume_id)
    except exception.InvalidVolume:
        return  # never connected: connect refused it
    try:
        _brick(kind).disconnect_volume(data, None)
    except _BRICK_ERRORS as e:
        raise exception.VolumeConnectionFailed(
            volume_id=volume_id, host=host,
            reason='disconnect failed: %s' % exception.describe(e)
        ) from e
    LOG.info('Volume %s disconnected from %s (%s)', volume_id, host, kind)
