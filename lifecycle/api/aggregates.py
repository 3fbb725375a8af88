"""``/os-aggregates`` as Nova's aggregates controller answers it, and the
project-specific ``/os-storage-groups``.

Bodies, status codes and messages follow
``nova/api/openstack/compute/aggregates.py``: create, update and the actions
answer 200 with the aggregate, delete answers 200 with no body, the
availability zone is the metadata key ``availability_zone``. The storage
group rules (``lifecycle.db.api``, aggregates section) add their own 400s
(bad ``storage_group`` name) and 409s (a host in two storage groups, a group
with retained disks left without hosts). ``GET /os-aggregates/{id}`` adds
the accounting of the aggregate's storage group under
``lifecycle:storage_group`` (null when the aggregate names none); see
``lifecycle.storage_groups``.
"""

import copy

from oslo_utils import strutils

from lifecycle import exception
from lifecycle import storage_groups
from lifecycle.api import schemas
from lifecycle.api import wsgi
from lifecycle.policies import admin as policies

_MAX_ID = 0x7FFFFFFF

# -- schemas (Nova's schemas/aggregates.py) -----------------------------------

# Nova's az_name: printable, no ':', no whitespace at either end.
_az_name = {'type': 'string', 'format': 'name', 'minLength': 1,
            'maxLength': 255, 'pattern': '^[^:]*$'}
_availability_zone = {'oneOf': [_az_name, {'type': 'null'}]}
# Nova's name_with_leading_trailing_spaces: at least one non-space.
_name_with_spaces = {'type': 'string', 'minLength': 1, 'maxLength': 255,
                     'pattern': r'\S'}

AGGREGATE_CREATE = {
    'type': 'object',
    'properties': {'aggregate': {
        'type': 'object',
        'properties': {'name': schemas.name,
                       'availability_zone': _availability_zone},
        'required': ['name'],
        'additionalProperties': False}},
    'required': ['aggregate'],
    'additionalProperties': False,
}

AGGREGATE_UPDATE = {
    'type': 'object',
    'properties': {'aggregate': {
        'type': 'object',
        'properties': {'name': _name_with_spaces,
                       'availability_zone': _availability_zone},
        'additionalProperties': False,
        'anyOf': [{'required': ['name']},
                  {'required': ['availability_zone']}]}},
    'required': ['aggregate'],
    'additionalProperties': False,
}


def _host_action(key: str) -> dict:
    return {'type': 'object',
            'properties': {key: {
                'type': 'object',
                'properties': {'host': schemas.fqdn},
                'required': ['host'],
                'additionalProperties': False}},
            'required': [key],
            'additionalProperties': False}


_metadata_with_null = copy.deepcopy(schemas.metadata)
_metadata_with_null['patternProperties']['^[a-zA-Z0-9-_:. ]{1,255}$'][
    'type'] = ['string', 'null']

SET_METADATA = {
    'type': 'object',
    'properties': {'set_metadata': {
        'type': 'object',
        'properties': {'metadata': _metadata_with_null},
        'required': ['metadata'],
        'additionalProperties': False}},
    'required': ['set_metadata'],
    'additionalProperties': False,
}

ACTIONS = {'add_host': _host_action('add_host'),
           'remove_host': _host_action('remove_host'),
           'set_metadata': SET_METADATA}


# -- views --------------------------------------------------------------------

def _time(at) -> str | None:
    # Nova serializes the naive UTC datetime itself.
    return None if at is None else at.isoformat()


def aggregate_view(req, aggregate, *, with_members: bool = True) -> dict:
    """Nova's aggregate document; ``uuid`` from 2.41. Create leaves out
    ``hosts`` and ``metadata``, as Nova does."""
    metadata = aggregate.metadata_dict
    doc = {'availability_zone': metadata.get('availability_zone'),
           'created_at': _time(aggregate.created_at),
           'deleted': False,
           'deleted_at': None,
           'id': aggregate.id,
           'name': aggregate.name,
           'updated_at': _time(aggregate.updated_at)}
    if with_members:
        doc['hosts'] = aggregate.host_names
        doc['metadata'] = metadata
    if req.is_supported('2.41'):
        doc['uuid'] = aggregate.uuid
    return doc


# -- controllers --------------------------------------------------------------

def _aggregate_id(value: str) -> int:
    """Nova's ``utils.validate_integer(id, 'id')``: 400 when it is no
    integer; an integer no aggregate can have is simply not found."""
    try:
        number = strutils.validate_integer(value, 'id')
    except ValueError as e:
        raise exception.InvalidInput(reason=str(e)) from None
    if not 0 < number <= _MAX_ID:
        raise exception.AggregateNotFound(aggregate_id=value)
    return number


class AggregatesController:
    def __init__(self, db) -> None:
        self.db = db

    def index(self, req):
        return {'aggregates': [aggregate_view(req, a)
                               for a in self.db.aggregate_get_all()]}

    def create(self, req, body):
        schemas.validate(AGGREGATE_CREATE, body)
        values = body['aggregate']
        name = values['name'].strip()
        zone = values.get('availability_zone')
        metadata = {'availability_zone': zone.strip()} if zone else {}
        aggregate = self.db.aggregate_create(name, metadata)
        return {'aggregate': aggregate_view(req, aggregate,
                                            with_members=False)}

    def show(self, req, id):  # Nova's route argument name
        aggregate = self.db.aggregate_get(_aggregate_id(id))
        doc = aggregate_view(req, aggregate)
        group = storage_groups.group_of(aggregate)
        doc[storage_groups.API_KEY] = (
            storage_groups.usage(self.db, group) if group else None)
        return {'aggregate': doc}

    def update(self, req, id, body):
        schemas.validate(AGGREGATE_UPDATE, body)
        values = dict(body['aggregate'])
        if 'name' in values:
            values['name'] = values['name'].strip()
            schemas.validate({'type': 'object',
                              'properties': {'name': schemas.name}},
                             {'name': values['name']})
        aggregate = self.db.aggregate_update(_aggregate_id(id), values)
        return {'aggregate': aggregate_view(req, aggregate)}

    def delete(self, req, id):
        self.db.aggregate_delete(_aggregate_id(id))
        return wsgi.Result(None, 200)

    def action(self, req, id, body):
        if not isinstance(body, dict) or len(body) != 1:
            raise wsgi.Fault(400, 'Malformed request body')
        name = next(iter(body))
        if name in ACTIONS:
            req.context.can(policies.AGGREGATES % name)
        if name not in ACTIONS:
            raise wsgi.Fault(400, 'There is no such action: %s' % name)
        schemas.validate(ACTIONS[name], body)
        aggregate_id = _aggregate_id(id)
        if name == 'add_host':
            aggregate = self._add_host(aggregate_id, body[name]['host'])
        elif name == 'remove_host':
            aggregate = self._remove_host(aggregate_id, body[name]['host'])
        else:
            aggregate = self.db.aggregate_set_metadata(
                aggregate_id, body[name]['metadata'])
        return {'aggregate': aggregate_view(req, aggregate)}

    def _add_host(self, aggregate_id: int, host: str):
        try:
            return self.db.aggregate_add_host(aggregate_id, host,
                                              check_host=True)
        except exception.InvalidAggregateAction as e:
            # Nova answers a zone conflict on add_host with 409.
            raise wsgi.Fault(409, e.format_message()) from None

    def _remove_host(self, aggregate_id: int, host: str):
        try:
            return self.db.aggregate_remove_host(aggregate_id, host)
        except (exception.AggregateNotFound,
                exception.AggregateHostNotFound) as e:
            raise wsgi.Fault(404, 'Cannot remove host %s in aggregate %s' % (
                host, aggregate_id)) from e
        except exception.InvalidAggregateAction as e:
            raise wsgi.Fault(409, e.format_message()) from None


class StorageGroupsController:
    """``/os-storage-groups``: the accounting of every storage group."""

    def __init__(self, db) -> None:
        self.db = db

    def index(self, req):
        return {'storage_groups': storage_groups.all_usage(self.db)}

    def show(self, req, name):
        known = (name in self.db.storage_group_names() or
                 self.db.storage_group_retained_disks(name))
        if not known:
            raise exception.StorageGroupNotFound(name=name)
        return {'storage_group': storage_groups.usage(self.db, name)}


def connect(router: wsgi.Router, controller: AggregatesController,
            groups: StorageGroupsController) -> None:
    def allowed(rule, handler):
        return wsgi.authorize(rule)(handler)
    aggr, sg = policies.AGGREGATES, policies.STORAGE_GROUPS
    router.connect('/os-aggregates', 'GET',
                   allowed(aggr % 'index', controller.index))
    router.connect('/os-aggregates', 'POST',
                   allowed(aggr % 'create', controller.create))
    router.connect('/os-aggregates/{id}', 'GET',
                   allowed(aggr % 'show', controller.show))
    router.connect('/os-aggregates/{id}', 'PUT',
                   allowed(aggr % 'update', controller.update))
    router.connect('/os-aggregates/{id}', 'DELETE',
                   allowed(aggr % 'delete', controller.delete))
    # Each action has its rule (checked in action()).
    router.connect('/os-aggregates/{id}/action', 'POST', controller.action)
    router.connect('/os-storage-groups', 'GET',
                   allowed(sg % 'index', groups.index))
    router.connect('/os-storage-groups/{name}', 'GET',
                   allowed(sg % 'show', groups.show))
