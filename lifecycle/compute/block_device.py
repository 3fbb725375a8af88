"""Nova's ``block_device_mapping_v2`` of a server create, reduced to what this
service supports: one bootable root volume.

Supported (what ``openstack server create --volume``, openstacksdk's
``create_server(boot_volume=...)`` and novaclient's ``--boot-volume``
send)::

    "block_device_mapping_v2": [{"source_type": "volume",
                                 "destination_type": "volume",
                                 "boot_index": 0,
                                 "uuid": "<volume id>",
                                 "delete_on_termination": false}]

with ``imageRef`` empty or absent, as in Nova. ``device_name`` is accepted
and ignored (the root disk is always ``vda``). Everything else Nova accepts
there (images, snapshots or blank volumes as source, local destinations,
extra volumes, sizes, buses, tags) is refused with 400, never silently
ignored.
"""

import dataclasses

from oslo_utils import strutils
from oslo_utils import uuidutils

from lifecycle import exception

SUPPORTED_KEYS = frozenset({'source_type', 'destination_type', 'uuid',
                            'boot_index', 'delete_on_termination',
                            'device_name'})
_INVALID = 'Block Device Mapping is Invalid: %s'


@dataclasses.dataclass(frozen=True)
class RootVolume:
    volume_id: str
    delete_on_termination: bool


def _invalid(reason: str) -> exception.InvalidInput:
    return exception.InvalidInput(reason=_INVALID % reason)


def _boot_index(bdm: dict) -> int | None:
    value = bdm.get('boot_index')
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _invalid('boot_index %r is not an integer' % value) from None


def root_volume(image_ref: str | None,
                bdms: list[dict] | None) -> RootVolume | None:
    """The root volume asked for, or None for an image-backed server;
    InvalidInput (400) for what this service cannot do."""
    if not bdms:
        return None
    roots = [bdm for bdm in bdms if _boot_index(bdm) == 0]
    if len(roots) != 1:
        # Nova's InvalidBDMBootSequence.
        raise _invalid('Boot sequence for the instance and image/block '
                       'device mapping combination is not valid: exactly '
                       'one mapping needs boot_index 0 (%d given).'
                       % len(roots))
    if len(bdms) > 1:
        raise _invalid('only the root volume can be mapped; this service '
                       'attaches no other block devices.')
    bdm = roots[0]
    unsupported = sorted(k for k, v in bdm.items()
                         if k not in SUPPORTED_KEYS and v is not None)
    if unsupported:
        raise _invalid('%s not supported by this service.'
                       % ', '.join(unsupported))
    source = bdm.get('source_type')
    if source != 'volume':
        raise _invalid('source_type %r is not supported: boot from an '
                       'existing bootable volume (source_type volume).'
                       % source)
    destination = bdm.get('destination_type') or 'volume'
    if destination != 'volume':
        raise _invalid('destination_type %r is not supported with a volume '
                       'source.' % destination)
    volume_id = bdm.get('uuid')
    if not volume_id or not uuidutils.is_uuid_like(volume_id):
        raise _invalid('uuid %r is not a volume id.' % volume_id)
    if image_ref:
        raise _invalid('imageRef must be empty or absent when the server '
                       'boots from a volume.')
    try:
        delete = strutils.bool_from_string(
            bdm.get('delete_on_termination', False), strict=True)
    except ValueError:
        raise _invalid('delete_on_termination %r is not a boolean.'
                       % bdm.get('delete_on_termination')) from None
    return RootVolume(volume_id=volume_id, delete_on_termination=delete)
