"""The documents of the REST API, shaped as Nova's view builders shape them
(``nova/api/openstack/compute/views``): links, servers, flavors, images,
hypervisors."""

import datetime
import hashlib
import re
import urllib.parse
import uuid

from oslo_config import cfg
from oslo_utils import timeutils

from lifecycle import states
from lifecycle.compute import volumes
from lifecycle.conf import CONF
from lifecycle.virt import domain_xml
from lifecycle import names
from lifecycle.policies import admin as admin_policies
from lifecycle.policies import servers as server_policies

# Statuses whose documents carry ``progress`` / ``fault`` in Nova.
_PROGRESS_STATUSES = ('ACTIVE', 'BUILD', 'REBUILD', 'RESIZE',
                      'VERIFY_RESIZE', 'MIGRATING')
_FAULT_STATUSES = ('ERROR', 'DELETED')
_UUID_NAMESPACE = uuid.UUID('6c1b7b0e-5f0a-4c8e-9d53-0d2f1a6c7e21')


# -- links --------------------------------------------------------------------

def url_join(*parts: str) -> str:
    """Nova's ``common.url_join``: an empty last part keeps a final '/'."""
    clean = [p.strip('/') for p in parts if p]
    if not parts[-1]:
        clean.append('')
    return '/'.join(clean)


def base_url(req) -> str:
    """The service root, as the client reached it (host and script name)."""
    return req.host_url + req.script_name


def _href(req, collection: str, ident) -> str:
    return url_join(base_url(req), 'v2.1', req.project_in_url, collection,
                    str(ident))


def _bookmark(req, collection: str, ident) -> str:
    return url_join(base_url(req), req.project_in_url, collection,
                    str(ident))


def links(req, collection: str, ident) -> list[dict]:
    return [{'rel': 'self', 'href': _href(req, collection, ident)},
            {'rel': 'bookmark', 'href': _bookmark(req, collection, ident)}]


def collection_links(req, ids: list[str], collection: str) -> list[dict]:
    """Nova's ``_get_collection_links``: a "next" link when a page is full.
    The limit parameter is already validated by the caller."""
    max_items = min(int(req.params.get('limit', CONF.api.max_limit)),
                    CONF.api.max_limit)
    if not max_items or max_items != len(ids):
        return []
    params = dict(sorted(req.params.items()))
    params['marker'] = ids[-1]
    url = url_join(base_url(req), 'v2.1', req.project_in_url, collection)
    return [{'rel': 'next',
             'href': '%s?%s' % (url, urllib.parse.urlencode(params))}]


def isotime(at: datetime.datetime | None) -> str | None:
    """Nova's ``utils.isotime`` for naive UTC datetimes."""
    return None if at is None else at.strftime('%Y-%m-%dT%H:%M:%SZ')


def _usage_time(at: datetime.datetime | None) -> str | None:
    """``OS-SRV-USG`` times: Nova serializes the naive datetime itself."""
    return None if at is None else at.strftime('%Y-%m-%dT%H:%M:%S.%f')


# -- servers ------------------------------------------------------------------

def server_basic(req, inst) -> dict:
    return {'id': inst.uuid, 'name': inst.display_name,
            'links': links(req, 'servers', inst.uuid)}


def host_is_up(node) -> bool:
    if node is None or node.last_seen_at is None:
        return False
    age = timeutils.utcnow(with_timezone=False) - node.last_seen_at
    return age.total_seconds() <= CONF.compute.service_down_time


def _host_status(node, host: str | None) -> str:
    """Nova's host_status: UP, MAINTENANCE (disabled), UNKNOWN (no recent
    heartbeat) or "" without a host."""
    if not host:
        return ''
    if node is not None and node.disabled:
        return 'MAINTENANCE'
    return 'UP' if host_is_up(node) else 'UNKNOWN'


def _hostname(display_name: str, instance_uuid: str) -> str:
    """Nova's ``utils.sanitize_hostname`` of the display name."""
    name = display_name.encode('latin-1', 'ignore').decode('latin-1')[:63]
    name = re.sub(r'[^\w.-]+', '', re.sub(r'[ _.]', '-', name))
    return name.lower().strip('.-') or 'Server-%s' % instance_uuid


def retained_disk(inst, details: bool = True) -> dict | None:
    """The project-specific summary of a disk kept through shelving, from
    the system metadata contract keys; None when there is none. Its host
    and location only with ``details`` (policy ``lifecycle:retained_disk``,
    admin): they describe the storage, not the server."""
    sysmeta = inst.system_metadata
    if not sysmeta.get(names.SHELVED_DISK):
        return None
    doc = {'storage_group': sysmeta.get(names.SHELVED_STORAGE_GROUP),
           'since': sysmeta.get(names.SHELVED_AT)}
    if details:
        doc.update(host=sysmeta.get(names.SHELVED_HOST),
                   location=sysmeta.get(names.SHELVED_DISK))
    return doc


def memory_state(inst) -> dict | None:
    """The hibernate-shelve marker: the server's memory is kept (Nova has
    no state for it; the status stays SHELVED or SHELVED_OFFLOADED)."""
    sysmeta = inst.system_metadata
    if not sysmeta.get(names.SHELVED_MEMORY_STATE):
        return None
    return {'saved_at': sysmeta.get(names.SHELVED_AT)}


def _volumes_attached(req, inst) -> list[dict]:
    """Nova's ``os-extended-volumes:volumes_attached``: the root volume of a
    volume-backed server (kept while it is offloaded, as Nova keeps its
    block device mappings); ``delete_on_termination`` from 2.3."""
    volume_id = volumes.root_volume_id(inst)
    if not volume_id:
        return []
    doc = {'id': volume_id}
    if req.is_supported('2.3'):
        doc['delete_on_termination'] = volumes.delete_on_termination(inst)
    return [doc]


def _fault(req, inst, status: str) -> dict | None:
    """The latest fault, shown as Nova shows it for ERROR/DELETED servers.

    Beyond Nova, it is also shown for SHELVED_OFFLOADED servers when it was
    recorded after the server was shelved: an unshelve that could not be
    placed leaves the server offloaded, and its fault must be visible
    (Nova's NoValidHost on unshelve is silent).
    """
    fault = inst.fault
    if fault is None:
        return None
    if status not in _FAULT_STATUSES:
        if status != 'SHELVED_OFFLOADED':
            return None
        shelved_at = inst.system_metadata.get(names.SHELVED_AT)
        try:
            since = timeutils.parse_isotime(shelved_at).replace(tzinfo=None)
        except (TypeError, ValueError, AttributeError):
            since = None
        # MySQL/MariaDB DATETIME keeps whole seconds (MariaDB truncates):
        # a fault recorded in the second of the shelve must still show.
        if since is not None and fault.created_at < since.replace(
                microsecond=0):
            return None
    doc = {'code': fault.code, 'created': isotime(fault.created_at),
           'message': fault.message}
    if fault.details and (req.context.is_admin or fault.code != 500):
        doc['details'] = fault.details
    return doc


def _flavor(req, inst, flavor) -> dict:
    if req.is_supported('2.47'):
        doc = {'vcpus': inst.vcpus, 'ram': inst.memory_mb,
               'disk': inst.root_gb,
               'ephemeral': getattr(flavor, 'ephemeral_gb', 0) or 0,
               'swap': getattr(flavor, 'swap', 0) or 0,
               'original_name': inst.flavor_name}
        if req.context.is_admin:
            doc['extra_specs'] = {}
        return doc
    return {'id': str(inst.flavorid),
            'links': [{'rel': 'bookmark',
                       'href': _bookmark(req, 'flavors', inst.flavorid)}]}


def _allowed(req, action: str, target: dict) -> bool:
    """The policy's answer for ``action`` on ``target`` (a project and a
    user), asked once per request: a list of a thousand servers of one
    project asks the same few questions of every row, and oslo.policy's
    check cost most of the list's time."""
    answers = req.environ.setdefault(_POLICY_ANSWERS, {})
    key = (action, target['project_id'], target['user_id'])
    if key not in answers:
        answers[key] = req.context.can(action, target, fatal=False)
    return answers[key]


_POLICY_ANSWERS = 'lifecycle.policy_answers'


def server_detail(req, inst, node=None, flavor=None, show=False) -> dict:
    """``node`` is the ComputeNode of ``inst.host`` (None without one),
    ``flavor`` its Flavor row when it still exists; ``show`` for
    ``GET /servers/{id}``, which has a few more keys than a list."""
    status = states.status_of(inst.vm_state)
    target = {'project_id': inst.project_id, 'user_id': inst.user_id}
    doc = {
        'accessIPv4': '', 'accessIPv6': '', 'addresses': {},
        'created': isotime(inst.created_at),
        'flavor': _flavor(req, inst, flavor),
        'hostId': (hashlib.sha224((inst.project_id + inst.host).encode())
                   .hexdigest() if inst.host else ''),
        'id': inst.uuid,
        'image': ({'id': inst.image_ref,
                   'links': [{'rel': 'bookmark',
                              'href': _bookmark(req, 'images',
                                                inst.image_ref)}]}
                  if inst.image_ref else ''),
        'links': links(req, 'servers', inst.uuid),
        'metadata': inst.metadata_dict,
        'name': inst.display_name,
        'status': status,
        'tenant_id': inst.project_id or '',
        'user_id': inst.user_id or '',
        'updated': isotime(inst.updated_at or inst.created_at),
        'OS-DCF:diskConfig': 'MANUAL',
        'OS-EXT-AZ:availability_zone': inst.availability_zone or '',
        'config_drive': '',
        'key_name': None,
        'OS-SRV-USG:launched_at': _usage_time(inst.launched_at),
        'OS-SRV-USG:terminated_at': _usage_time(inst.terminated_at),
        'OS-EXT-STS:task_state': inst.task_state,
        'OS-EXT-STS:vm_state': inst.vm_state,
        'OS-EXT-STS:power_state': inst.power_state,
        'os-extended-volumes:volumes_attached': _volumes_attached(req, inst),
        names.API_RETAINED_DISK: retained_disk(
            inst, _allowed(req, admin_policies.RETAINED_DISK, target)),
        names.API_MEMORY_STATE: memory_state(inst),
    }
    fault = _fault(req, inst, status)
    if fault is not None:
        doc['fault'] = fault
    if status in _PROGRESS_STATUSES:
        doc['progress'] = 0
    hostname = _hostname(inst.display_name, inst.uuid)
    if _allowed(req, server_policies.EXTENDED_ATTRIBUTES, target):
        doc['OS-EXT-SRV-ATTR:host'] = inst.host
        doc['OS-EXT-SRV-ATTR:instance_name'] = domain_xml.domain_name(
            inst.uuid)
        doc['OS-EXT-SRV-ATTR:hypervisor_hostname'] = (
            node.hypervisor_hostname if node is not None and inst.host
            else None)
        if req.is_supported('2.3'):
            doc.update({
                'OS-EXT-SRV-ATTR:hostname': hostname,
                'OS-EXT-SRV-ATTR:kernel_id': '',
                'OS-EXT-SRV-ATTR:launch_index': 0,
                'OS-EXT-SRV-ATTR:ramdisk_id': '',
                'OS-EXT-SRV-ATTR:reservation_id': 'r-%s' % inst.uuid[:8],
                'OS-EXT-SRV-ATTR:root_device_name': '/dev/vda',
                'OS-EXT-SRV-ATTR:user_data': None})
    elif req.is_supported('2.90'):
        doc['OS-EXT-SRV-ATTR:hostname'] = hostname
    if req.is_supported('2.9'):
        doc['locked'] = False
    if req.is_supported('2.16') and _allowed(req, server_policies.HOST_STATUS,
                                             target):
        doc['host_status'] = _host_status(node, inst.host)
    if req.is_supported('2.19'):
        doc['description'] = None
    if req.is_supported('2.26'):
        doc['tags'] = []
    if req.is_supported('2.63'):
        doc['trusted_image_certificates'] = None
    if show and req.is_supported('2.71'):
        doc['server_groups'] = []
    if req.is_supported('2.73'):
        doc['locked_reason'] = None
    return doc


# -- flavors ------------------------------------------------------------------

def flavor_basic(req, flavor) -> dict:
    doc = {'id': flavor.flavorid, 'name': flavor.name,
           'links': links(req, 'flavors', flavor.flavorid)}
    if req.is_supported('2.55'):
        doc['description'] = flavor.description
    return doc


def flavor_detail(req, flavor) -> dict:
    # rxtx_factor is not stored; Nova's default is shown.
    doc = {'id': flavor.flavorid, 'name': flavor.name,
           'ram': flavor.memory_mb, 'disk': flavor.root_gb,
           'swap': flavor.swap or ('' if not req.is_supported('2.75') else 0),
           'OS-FLV-EXT-DATA:ephemeral': flavor.ephemeral_gb or 0,
           'OS-FLV-DISABLED:disabled': False,
           'vcpus': flavor.vcpus,
           'os-flavor-access:is_public': bool(flavor.is_public),
           'rxtx_factor': 1.0,
           'links': links(req, 'flavors', flavor.flavorid)}
    if req.is_supported('2.55'):
        doc['description'] = flavor.description
    if req.is_supported('2.61') and req.context.is_admin:
        doc['extra_specs'] = {}
    return doc


# -- images -------------------------------------------------------------------

_IMAGE_STATUS = {'active': 'ACTIVE', 'queued': 'SAVING', 'saving': 'SAVING',
                 'deleted': 'DELETED', 'pending_delete': 'DELETED',
                 'killed': 'ERROR'}
_IMAGE_PROGRESS = {'queued': 25, 'saving': 50, 'active': 100}


def _image_time(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return isotime(timeutils.parse_isotime(value).astimezone(
            datetime.UTC).replace(tzinfo=None))
    except ValueError:
        return value


def _image_links(req, image_id: str) -> list[dict]:
    """Self, bookmark and Nova's "alternate" link to the image service:
    Glance's endpoint when one is configured, else this API's bookmark."""
    try:
        glance = CONF.glance.endpoint_override
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        glance = None
    alternate = (url_join(glance, 'images', image_id) if glance
                 else _bookmark(req, 'images', image_id))
    return links(req, 'images', image_id) + [
        {'rel': 'alternate', 'type': 'application/vnd.openstack.image',
         'href': alternate}]


def image_basic(req, image: dict) -> dict:
    return {'id': image['id'], 'name': image.get('name'),
            'links': _image_links(req, image['id'])}


def image_detail(req, image: dict) -> dict:
    return {
        'id': image['id'], 'name': image.get('name'),
        'minRam': int(image.get('min_ram') or 0),
        'minDisk': int(image.get('min_disk') or 0),
        'metadata': dict(image.get('properties') or {}),
        'created': _image_time(image.get('created_at')),
        'updated': _image_time(image.get('updated_at')),
        'status': _IMAGE_STATUS.get(image.get('status'), 'UNKNOWN'),
        'progress': _IMAGE_PROGRESS.get(image.get('status'), 0),
        'OS-EXT-IMG-SIZE:size': image.get('size'),
        'links': _image_links(req, image['id']),
    }


# -- hypervisors --------------------------------------------------------------

def hypervisor(req, node, detail: bool) -> dict:
    """Nova's hypervisor document. From 2.53 ids are UUIDs (derived from the
    host name, stable). The capacity fields Nova drops at 2.88 are kept at
    every version: this service has no placement API to show them."""
    uuids = req.is_supported('2.53')
    doc = {'id': (str(uuid.uuid5(_UUID_NAMESPACE, 'node:' + node.host))
                  if uuids else node.id),
           'hypervisor_hostname': node.hypervisor_hostname,
           'state': 'up' if host_is_up(node) else 'down',
           'status': 'disabled' if node.disabled else 'enabled'}
    if not detail:
        return doc
    free_ram = node.memory_mb - node.memory_mb_used
    doc.update({
        'hypervisor_type': node.hypervisor_type,
        'hypervisor_version': getattr(node, 'hypervisor_version', 0) or 0,
        'host_ip': node.host_ip,
        'service': {'id': (str(uuid.uuid5(_UUID_NAMESPACE,
                                          'service:' + node.host))
                           if uuids else node.id),
                    'host': node.host, 'disabled_reason': None},
        'vcpus': node.vcpus, 'vcpus_used': node.vcpus_used,
        'memory_mb': node.memory_mb, 'memory_mb_used': node.memory_mb_used,
        'local_gb': 0, 'local_gb_used': 0, 'free_ram_mb': free_ram,
        'free_disk_gb': 0, 'current_workload': 0,
        'running_vms': node.running_vms, 'disk_available_least': 0,
        'cpu_info': {} if req.is_supported('2.28') else '{}',
    })
    if req.is_supported('2.88'):
        doc['uptime'] = None
    return doc
