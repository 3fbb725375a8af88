"""JSON schemas of request bodies and query strings, per microversion.

They follow Nova's (``nova/api/openstack/compute/schemas``) for the fields
this service implements, validated the way Nova validates: Draft 2020-12,
``minimum``/``maximum`` also applied to numeric strings, Nova's ``name`` and
``uuid`` formats and Nova's error messages. Server create is strict: a Nova
field this service cannot honour (key_name, user_data, legacy
block_device_mapping, ...) is rejected as an unexpected property rather than
silently ignored; of ``block_device_mapping_v2`` only a root volume is
supported (``compute/block_device.py`` refuses the rest).
"""

import copy
import unicodedata

import jsonschema
from oslo_utils import uuidutils

from lifecycle import exception
from lifecycle import names

MAX_INT = 0x7FFFFFFF

_FORMATS = jsonschema.FormatChecker()


class InvalidName(Exception):
    pass


NAME_REASON = ("An invalid 'name' value was provided. The name must be: "
               "printable characters. Can not start or end with whitespace.")


def _printable(char: str) -> bool:
    """Nova's ``_is_printable`` over the range its regex is built from
    (U+0000 to U+FFFE: characters beyond, such as emoji, are refused)."""
    category = unicodedata.category(char)
    return ord(char) < 0xFFFF and not category.startswith('C') and (
        not category.startswith('Z') or category == 'Zs')


@_FORMATS.checks('name', InvalidName)
def _check_name(instance) -> bool:
    """Nova's ``valid_name_regex``: printable, no space at either end."""
    if not isinstance(instance, str):
        raise InvalidName()
    if instance and (instance[0].isspace() or instance[-1].isspace() or
                     unicodedata.category(instance[0]) == 'Zs' or
                     unicodedata.category(instance[-1]) == 'Zs'):
        raise InvalidName()
    if not all(_printable(c) for c in instance):
        raise InvalidName()
    return True


@_FORMATS.checks('uuid')
def _check_uuid(instance) -> bool:
    return not isinstance(instance, str) or uuidutils.is_uuid_like(instance)


def _numeric(instance):
    try:
        return int(instance)
    except (TypeError, ValueError):
        try:
            return float(instance)
        except (TypeError, ValueError):
            return None


def _bound(keyword):
    base = jsonschema.Draft202012Validator.VALIDATORS[keyword]

    def check(validator, value, instance, schema):
        number = _numeric(instance) if not isinstance(instance, bool) else None
        if number is None:
            return
        yield from base(validator, value, number, schema) or ()
    return check


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {'minimum': _bound('minimum'), 'maximum': _bound('maximum')})


def validate(schema: dict, instance, *, is_body: bool = True) -> None:
    """Raise ``exception.Invalid`` (400) with Nova's message."""
    try:
        _Validator(schema, format_checker=_FORMATS).validate(instance)
    except jsonschema.ValidationError as ex:
        if isinstance(ex.cause, InvalidName):
            detail = NAME_REASON
        elif len(ex.path) > 0:
            if is_body:
                detail = ('Invalid input for field/attribute %s. Value: %s. '
                          '%s' % (ex.path.pop(), ex.instance, ex.message))
            else:
                detail = ('Invalid input for query parameters %s. Value: %s. '
                          '%s' % (ex.path.popleft(), ex.instance, ex.message))
        else:
            detail = ex.message
        raise exception.Invalid(detail) from None


def for_version(req_version, versioned: list[tuple[str, str | None, dict]]
                ) -> dict | None:
    """The schema of ``versioned`` [(min, max or None, schema)] covering
    ``req_version`` (an APIVersion), else None."""
    for low, high, schema in versioned:
        if req_version >= low and (high is None or req_version <= high):
            return schema
    return None


# -- parameter types (Nova's parameter_types) ---------------------------------

name = {'type': 'string', 'format': 'name', 'minLength': 1,
        'maxLength': 255}
fqdn = {'type': 'string', 'pattern': '^[a-zA-Z0-9-._]*$', 'minLength': 1,
        'maxLength': 255}
metadata = {'type': 'object',
            'patternProperties': {'^[a-zA-Z0-9-_:. ]{1,255}$': {
                'type': 'string', 'maxLength': 255}},
            'additionalProperties': False}
boolean = {'type': ['boolean', 'string'],
           'enum': [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on',
                    'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false',
                    '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']}
positive_integer = {'type': ['integer', 'string'], 'pattern': '^[0-9]*$',
                    'minimum': 1, 'minLength': 1}
non_negative_integer = {'type': ['integer', 'string'], 'pattern': '^[0-9]*$',
                        'minimum': 0, 'minLength': 1}
flavor_param_positive = {'type': ['integer', 'string'],
                         'pattern': '^[0-9]+$', 'minimum': 1,
                         'maximum': MAX_INT}
flavor_param_non_negative = dict(flavor_param_positive, minimum=0)


def _query(schema: dict) -> dict:
    """A query parameter: webob gives each one as a list of strings."""
    return {'type': 'array', 'items': schema}


_string_param = _query({'type': 'string'})


# -- servers ------------------------------------------------------------------

_network_item = {
    'type': 'object',
    'properties': {'fixed_ip': {'type': 'string'},
                   'port': {'type': ['string', 'null'], 'format': 'uuid'},
                   'uuid': {'type': 'string'}},
    'additionalProperties': False}

# Nova's block_device_mapping_new_item, all of whose fields are accepted
# here so that what this service cannot do gets a clear 400 from
# compute/block_device.py rather than "additional properties".
_bdm_v2_item = {
    'type': 'object',
    'properties': {
        'source_type': {'type': 'string',
                        'enum': ['volume', 'image', 'snapshot', 'blank']},
        'uuid': {'type': 'string', 'minLength': 1, 'maxLength': 255,
                 'pattern': '^[a-zA-Z0-9._-]*$'},
        'image_id': {'type': 'string', 'format': 'uuid'},
        'destination_type': {'type': 'string',
                             'enum': ['local', 'volume']},
        'guest_format': {'type': 'string', 'maxLength': 255},
        'device_type': {'type': 'string', 'maxLength': 255},
        'disk_bus': {'type': 'string', 'maxLength': 255},
        'boot_index': {'type': ['integer', 'string', 'null'],
                       'pattern': '^-?[0-9]+$'},
        'device_name': {'type': ['string', 'null'], 'maxLength': 255},
        'volume_size': {'type': ['integer', 'string', 'null'],
                        'pattern': '^[0-9]+$', 'minimum': 1},
        'delete_on_termination': boolean,
        'no_device': {},
        'connection_info': {'type': 'string', 'maxLength': 16777215},
        'tag': {'type': 'string', 'maxLength': 60},
        'volume_type': {'type': ['string', 'null'], 'maxLength': 255},
    },
    'additionalProperties': False,
}

# Nova's scheduler_hints schema: the hints it knows are typed, any other
# hint is accepted (and ignored unless a filter reads it).
_server_list = {'oneOf': [{'type': 'string', 'format': 'uuid'},
                          {'type': 'array', 'uniqueItems': True,
                           'items': {'type': 'string', 'format': 'uuid'}}]}
_scheduler_hints = {
    'type': 'object',
    'properties': {
        'group': {'type': 'string', 'format': 'uuid'},
        'different_host': _server_list,
        'same_host': _server_list,
        'query': {'type': ['string', 'object']},
        'target_cell': {'type': 'string', 'minLength': 1, 'maxLength': 255},
        'different_cell': {'type': ['string', 'array'],
                           'items': {'type': 'string'}},
        'build_near_host_ip': {'type': 'string'},
        'cidr': {'type': 'string', 'pattern': '^/[0-9a-f.:]+$'},
    },
    'additionalProperties': True,
}

server_create = {
    'type': 'object',
    'properties': {
        'os:scheduler_hints': _scheduler_hints,
        'OS-SCH-HNT:scheduler_hints': _scheduler_hints,
        'server': {
            'type': 'object',
            'properties': {
                'name': name,
                'imageRef': {'oneOf': [{'type': 'string', 'format': 'uuid'},
                                       {'type': 'string', 'maxLength': 0}]},
                'flavorRef': {'type': ['string', 'integer'], 'minLength': 1},
                'adminPass': {'type': 'string'},
                'metadata': metadata,
                'networks': {'type': 'array', 'items': _network_item},
                'availability_zone': name,
                'OS-DCF:diskConfig': {'type': 'string',
                                      'enum': ['AUTO', 'MANUAL']},
                'min_count': positive_integer,
                'max_count': positive_integer,
                'block_device_mapping_v2': {'type': 'array',
                                            'items': _bdm_v2_item},
            },
            'required': ['name', 'flavorRef'],
            'additionalProperties': False,
        },
    },
    'required': ['server'],
    'additionalProperties': False,
}

# 2.37: networks is required, either a list or 'none'/'auto'.
server_create_v237 = copy.deepcopy(server_create)
server_create_v237['properties']['server']['required'].append('networks')
_v237_item = copy.deepcopy(_network_item)
_v237_item['properties']['uuid'] = {'type': 'string', 'format': 'uuid'}
server_create_v237['properties']['server']['properties']['networks'] = {
    'oneOf': [{'type': 'array', 'items': _v237_item},
              {'type': 'string', 'enum': ['none', 'auto']}]}

# 2.74: an admin may name the host.
server_create_v274 = copy.deepcopy(server_create_v237)
server_create_v274['properties']['server']['properties']['host'] = fqdn

SERVER_CREATE = [('2.1', '2.36', server_create),
                 ('2.37', '2.73', server_create_v237),
                 ('2.74', None, server_create_v274)]

_SERVER_FILTERS = (
    'user_id', 'project_id', 'tenant_id', 'launch_index', 'image_ref',
    'image', 'kernel_id', 'ramdisk_id', 'hostname', 'key_name',
    'power_state', 'vm_state', 'task_state', 'host', 'node', 'flavor',
    'reservation_id', 'launched_at', 'terminated_at', 'availability_zone',
    'name', 'display_name', 'description', 'display_description',
    'locked_by', 'uuid', 'root_device_name', 'config_drive', 'access_ip_v4',
    'access_ip_v6', 'auto_disk_config', 'progress', 'sort_key', 'sort_dir',
    'all_tenants', 'soft_deleted', 'deleted', 'status', 'changes-since',
    'ip', 'ip6', 'created_at', 'tags', 'tags-any', 'not-tags',
    'not-tags-any', 'changes-before', 'locked')

server_index_query = {
    'type': 'object',
    'properties': dict(
        {key: _string_param for key in _SERVER_FILTERS},
        limit=_query(non_negative_integer), marker=_string_param),
    'additionalProperties': True,
}
server_index_query_v275 = dict(server_index_query, additionalProperties=False)

SERVER_INDEX_QUERY = [('2.1', '2.74', server_index_query),
                      ('2.75', None, server_index_query_v275)]


def _action(key: str) -> dict:
    """Nova's schema of an action whose value is not looked at."""
    return {'type': 'object', 'properties': {key: {}}, 'required': [key],
            'additionalProperties': False}


unshelve_v277 = {
    'type': 'object',
    'properties': {'unshelve': {
        'type': ['object', 'null'],
        'properties': {'availability_zone': name},
        'required': ['availability_zone'],
        'additionalProperties': False}},
    'required': ['unshelve'],
    'additionalProperties': False,
}

unshelve_v291 = {
    'type': 'object',
    'properties': {'unshelve': {
        'type': ['object', 'null'],
        'properties': {'availability_zone': {'type': ['string', 'null']},
                       'host': {'type': 'string'}},
        'additionalProperties': False}},
    'required': ['unshelve'],
    'additionalProperties': False,
}

# Nova looks at no value of ``shelve``; only the project's own key is
# checked (``properties`` applies to objects only), so what Nova's clients
# send (null, {}) passes as before.
shelve = {
    'type': 'object',
    'properties': {'shelve': {'properties': {
        names.API_KEEP_MEMORY: {'type': 'boolean'}}}},
    'required': ['shelve'],
    'additionalProperties': False,
}

ACTIONS = {
    'shelve': [('2.1', None, shelve)],
    'shelveOffload': [('2.1', None, _action('shelveOffload'))],
    'unshelve': [('2.1', '2.76', _action('unshelve')),
                 ('2.77', '2.90', unshelve_v277),
                 ('2.91', None, unshelve_v291)],
    'os-start': [('2.1', None, _action('os-start'))],
    'os-stop': [('2.1', None, _action('os-stop'))],
}


# -- flavors ------------------------------------------------------------------

flavor_create = {
    'type': 'object',
    'properties': {
        'flavor': {
            'type': 'object',
            'properties': {
                'name': name,
                'id': {'type': ['string', 'number', 'null'],
                       'minLength': 1, 'maxLength': 255,
                       'pattern': '^(?! )[a-zA-Z0-9. _-]+(?<! )$'},
                'ram': flavor_param_positive,
                'vcpus': flavor_param_positive,
                'disk': flavor_param_non_negative,
                'OS-FLV-EXT-DATA:ephemeral': flavor_param_non_negative,
                'swap': flavor_param_non_negative,
                'rxtx_factor': {'type': ['number', 'string'],
                                'pattern': r'^[0-9]+(\.[0-9]+)?$',
                                'exclusiveMinimum': 0,
                                'maximum': 3.40282e+38},
                'os-flavor-access:is_public': boolean,
            },
            'required': ['name', 'ram', 'vcpus', 'disk'],
            'additionalProperties': False,
        },
    },
    'required': ['flavor'],
    'additionalProperties': False,
}

flavor_create_v255 = copy.deepcopy(flavor_create)
flavor_create_v255['properties']['flavor']['properties']['description'] = {
    'type': ['string', 'null'], 'minLength': 0, 'maxLength': 65535}

FLAVOR_CREATE = [('2.1', '2.54', flavor_create),
                 ('2.55', None, flavor_create_v255)]

flavor_index_query = {
    'type': 'object',
    'properties': {
        'limit': _query(non_negative_integer), 'marker': _string_param,
        'is_public': _string_param, 'minRam': _string_param,
        'minDisk': _string_param,
        'sort_key': _query({'type': 'string', 'enum': [
            'created_at', 'description', 'disabled', 'ephemeral_gb',
            'flavorid', 'id', 'is_public', 'memory_mb', 'name', 'root_gb',
            'rxtx_factor', 'swap', 'updated_at', 'vcpu_weight', 'vcpus']}),
        'sort_dir': _query({'type': 'string', 'enum': ['asc', 'desc']}),
    },
    'additionalProperties': True,
}
flavor_index_query_v275 = dict(flavor_index_query, additionalProperties=False)

FLAVOR_INDEX_QUERY = [('2.1', '2.74', flavor_index_query),
                      ('2.75', None, flavor_index_query_v275)]

# images and hypervisors: paging only, unknown keys ignored as in Nova.
paging_query = {
    'type': 'object',
    'properties': {'limit': _query(non_negative_integer),
                   'marker': _string_param},
    'additionalProperties': True,
}
