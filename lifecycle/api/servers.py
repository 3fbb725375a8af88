"""``/servers``: list, show, create, delete and the lifecycle actions, as
Nova's ``servers`` and ``shelve`` controllers answer them."""

import datetime
import re
import secrets
import urllib.parse

from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import exception
from lifecycle import names
from lifecycle import states
from lifecycle.api import schemas
from lifecycle.api import views
from lifecycle.api import wsgi
from lifecycle.conf import CONF
from lifecycle.policies import servers as server_policies
from lifecycle.policies import shelve as shelve_policies

SERVERS = server_policies.SERVERS
SHELVE = shelve_policies.POLICY_ROOT

LOG = logging.getLogger(__name__)

# Nova's ``common._STATE_MAP`` reduced to the statuses this service has.
_STATUS_TO_VM_STATES = {}
for _vm_state, _status in states.STATUS.items():
    _STATUS_TO_VM_STATES.setdefault(_status, []).append(_vm_state)

# Filters the database applies (exact) and this module applies (regex, as
# Python reads them); the other filter names Nova knows are accepted and
# ignored, as Nova ignores those it strips.
_EXACT_FILTERS = {'uuid': 'uuid', 'vm_state': 'vm_state',
                  'task_state': 'task_state', 'host': 'host',
                  'user_id': 'user_id', 'project_id': 'project_id',
                  'tenant_id': 'project_id', 'image': 'image_ref',
                  'image_ref': 'image_ref', 'flavor': 'flavorid'}
_REGEX_FILTERS = {'name': 'display_name', 'display_name': 'display_name',
                  'availability_zone': 'availability_zone'}
# What a caller without ``allow_all_filters`` may filter on (Nova's
# ``_get_server_search_options`` for users); other filters are ignored.
_USER_FILTERS = frozenset({'name', 'status', 'image', 'flavor'})


def _query_params(req) -> dict[str, list[str]]:
    return {key: req.GET.getall(key) for key in req.GET.keys()}


def paging(req, schema_versions):
    """Validate the query string and return (limit, marker) as Nova's
    ``get_limit_and_marker``: limit capped at ``[api] max_limit``."""
    schema = schemas.for_version(req.api_version, schema_versions)
    schemas.validate(schema, _query_params(req), is_body=False)
    limit = CONF.api.max_limit
    if 'limit' in req.GET:
        limit = min(limit, int(req.GET.getall('limit')[-1]))
    marker = req.GET.getall('marker')[-1] if 'marker' in req.GET else None
    return limit, marker


def page(items: list, limit: int, marker: str | None, key) -> list:
    """The page of ``items`` after ``marker``; 400 if it is not there."""
    if marker is not None:
        ids = [key(item) for item in items]
        if marker not in ids:
            raise wsgi.Fault(400, 'marker [%s] not found' % marker)
        items = items[ids.index(marker) + 1:]
    return items[:limit]


def _changes_window(req) -> dict:
    """``changes-since`` (and from 2.66 ``changes-before``) as Nova reads
    them: ISO 8601 times, 400 when unparsable or when the window is
    reversed; the instances changed in it, deleted ones included."""
    window = {}
    keys = [('changes-since', 'changed_since')]
    if req.is_supported('2.66'):
        keys.append(('changes-before', 'changed_before'))
    for key, arg in keys:
        if key in req.GET:
            try:
                when = timeutils.parse_isotime(req.GET.getall(key)[-1])
            except ValueError:
                raise wsgi.Fault(400, 'Invalid filter field: %s.' % key
                                 ) from None
            window[arg] = timeutils.normalize_time(when)
    if window.get('changed_since', datetime.datetime.min) > window.get(
            'changed_before', datetime.datetime.max):
        raise wsgi.Fault(400, 'The value of changes-since must be less '
                              'than or equal to changes-before.')
    return window


class ServersController:
    def __init__(self, compute, db) -> None:
        """``compute``: lifecycle.compute.api.API; ``db``: Database."""
        self.compute = compute
        self.db = db

    # -- reads ----------------------------------------------------------------

    def _filters(self, req) -> tuple[dict, dict] | None:
        """(exact, regex) filters; None when a status matches nothing."""
        exact, regex = {}, {}
        allowed = (None if req.context.can(SERVERS % 'allow_all_filters',
                                           fatal=False)
                   else _USER_FILTERS)
        for key, attr in _EXACT_FILTERS.items():
            if key in req.GET and (allowed is None or key in allowed):
                exact.setdefault(attr, set()).update(req.GET.getall(key))
        if 'status' in req.GET:
            vm_states = set()
            for status in req.GET.getall('status'):
                vm_states.update(_STATUS_TO_VM_STATES.get(status.upper(), []))
            if not vm_states:
                if req.is_supported('2.38'):
                    raise wsgi.Fault(400, 'Invalid status value')
                return None
            exact.setdefault('vm_state', set()).update(vm_states)
        for key, attr in _REGEX_FILTERS.items():
            if key in req.GET and (allowed is None or key in allowed):
                try:
                    regex[attr] = re.compile(req.GET.getall(key)[-1])
                except re.error:
                    raise wsgi.Fault(
                        400, 'Invalid input for query parameters %s. '
                             'Value: %s. It is not a valid regular '
                             'expression' % (key, req.GET[key])) from None
        return exact, regex

    def _list(self, req, rule: str) -> list:
        """The caller's project's servers; every project's with
        ``all_tenants`` (policy ``<rule>:get_all_tenants``, admin), as
        Nova."""
        req.context.can(rule)
        limit, marker = paging(req, schemas.SERVER_INDEX_QUERY)
        filters = self._filters(req)
        if filters is None:
            return []
        exact, regex = filters
        window = _changes_window(req)
        if 'all_tenants' in req.GET:
            req.context.can(rule + ':get_all_tenants')
        else:
            # Nova: without all_tenants a listing is the caller's project,
            # whatever project filter it sent.
            exact['project_id'] = {req.context.project_id}
        try:
            if not regex:
                return self.compute.get_all(req.context, limit=limit,
                                            marker=marker, exact=exact,
                                            **window)
            # Python's regular expressions are not the database's: these
            # filters, and so the page, are applied here, to the rows the
            # exact filters (the project among them) leave.
            found = [
                inst for inst in self.compute.get_all(req.context,
                                                      exact=exact, **window)
                if all(pattern.search(getattr(inst, attr) or '')
                       for attr, pattern in regex.items())]
        except exception.InstanceNotFound:
            raise wsgi.Fault(400, 'marker [%s] not found' % marker) from None
        return page(found, limit, marker, lambda i: i.uuid)

    def index(self, req):
        instances = self._list(req, SERVERS % 'index')
        doc = {'servers': [views.server_basic(req, i) for i in instances]}
        return self._with_links(req, doc, instances, 'servers')

    def detail(self, req):
        instances = self._list(req, SERVERS % 'detail')
        nodes = {n.host: n for n in self.db.compute_node_get_all()}
        flavors = {f.flavorid: f for f in self.db.flavor_get_all()}
        doc = {'servers': [
            views.server_detail(req, i, nodes.get(i.host),
                                flavors.get(i.flavorid))
            for i in instances]}
        return self._with_links(req, doc, instances, 'servers/detail')

    @staticmethod
    def _with_links(req, doc, instances, collection):
        next_links = views.collection_links(
            req, [i.uuid for i in instances], collection)
        if next_links:
            doc['servers_links'] = next_links
        return doc

    def _get(self, req, instance_uuid: str, rule: str, *,
             faults: bool = True):
        """The instance, if the caller may see it (another project's is
        404, as Nova's project-scoped lookup), and ``rule`` allows
        ``rule`` on it (else 403); ``faults=False`` for a caller that shows
        none of it."""
        ctx = req.context
        inst = self.compute.get(ctx, instance_uuid, faults=faults)
        if inst.project_id != ctx.project_id and not ctx.is_admin:
            raise exception.InstanceNotFound(instance_id=instance_uuid)
        ctx.can(rule, {'project_id': inst.project_id,
                       'user_id': inst.user_id})
        return inst

    def _detail_of(self, req, instance_uuid: str) -> dict:
        inst = self._get(req, instance_uuid, SERVERS % 'show')
        node = flavor = None
        if inst.host:
            try:
                node = self.db.compute_node_get(inst.host)
            except exception.ComputeHostNotFound:
                node = None
        try:
            flavor = self.db.flavor_get(inst.flavorid)
        except exception.FlavorNotFound:
            flavor = None
        return views.server_detail(req, inst, node, flavor, show=True)

    def show(self, req, id):  # Nova's route argument name
        return {'server': self._detail_of(req, id)}

    # -- create and delete ----------------------------------------------------

    def create(self, req, body):
        ctx = req.context
        ctx.can(SERVERS % 'create')
        schemas.validate(schemas.for_version(req.api_version,
                                             schemas.SERVER_CREATE), body)
        server = body['server']
        if server.get('host'):
            ctx.can('compute:servers:create:requested_destination')
        min_count = int(server.get('min_count', 1))
        max_count = int(server.get('max_count', min_count))
        if min_count > max_count:
            raise wsgi.Fault(400, 'min_count must be <= max_count')
        if max_count > 1:
            raise wsgi.Fault(400, 'Creating more than one server per request '
                                  'is not supported by this service.')
        networks = server.get('networks')
        if isinstance(networks, list) and networks:
            raise wsgi.Fault(400, 'This service has no networking: use '
                                  '"networks": "none" or "auto" (2.37) or '
                                  'leave networks out.')
        bdms = _without_image_root(server.get('imageRef'),
                                   server.get('block_device_mapping_v2'))
        if not server.get('imageRef') and not bdms:
            raise wsgi.Fault(400, 'Missing imageRef attribute')
        if bdms:
            ctx.can(SERVERS % 'create:attach_volume')
        hints = self._scheduler_hints(req, body)
        # Nova's get_id_from_href: a flavor link or a bare id.
        flavor_ref = urllib.parse.urlsplit(
            str(server['flavorRef'])).path.split('/')[-1]
        inst = self.compute.create(
            req.context, name=server['name'].strip(),
            image_ref=server.get('imageRef'), flavor_ref=flavor_ref,
            metadata=server.get('metadata') or {},
            host=server.get('host'),
            availability_zone=server.get('availability_zone'),
            block_device_mapping=bdms, scheduler_hints=hints)
        doc = {'server': {
            'id': inst.uuid,
            'links': views.links(req, 'servers', inst.uuid),
            'OS-DCF:diskConfig': 'MANUAL',
            'security_groups': [{'name': 'default'}],
            'adminPass': server.get('adminPass') or secrets.token_urlsafe(9),
        }}
        return wsgi.Result(doc, 202,
                           {'Location': doc['server']['links'][0]['href']})

    def _scheduler_hints(self, req, body) -> dict:
        """Nova's ``os:scheduler_hints`` (or ``OS-SCH-HNT:``): the
        ``storage_group`` hint for HostAggregateGroupFilter, ``same_host``
        and ``different_host`` as the hosts of the servers they name (each
        visible to the caller, else 400); other hints are kept for the
        filters and otherwise ignored, as Nova ignores hints no enabled
        filter reads."""
        hints = dict(body.get('os:scheduler_hints') or
                     body.get('OS-SCH-HNT:scheduler_hints') or {})
        for key in ('same_host', 'different_host'):
            if key not in hints:
                continue
            uuids = hints[key]
            uuids = [uuids] if isinstance(uuids, str) else list(uuids)
            hosts = set()
            for uuid in uuids:
                try:
                    inst = self._get(req, uuid, SERVERS % 'show')
                except exception.InstanceNotFound:
                    raise wsgi.Fault(400, 'Invalid scheduler hint %s: '
                                          'server %s not found.'
                                     % (key, uuid)) from None
                if inst.host:
                    hosts.add(inst.host)
            hints[key] = sorted(hosts)
        group = hints.get(names.HINT_STORAGE_GROUP)
        if isinstance(group, list):
            group = group[0] if len(group) == 1 else None
        if names.HINT_STORAGE_GROUP in hints and (
                not isinstance(group, str) or not group):
            raise wsgi.Fault(400, 'Invalid scheduler hint storage_group: '
                                  'a storage group name is expected.')
        return hints

    def delete(self, req, id):
        try:
            inst = self._get(req, id, SERVERS % 'delete')
            self.compute.delete(req.context, inst.uuid, instance=inst)
        except exception.InstanceNotFound:
            raise wsgi.Fault(404, 'Instance could not be found') from None
        except exception.InstanceInvalidState as e:
            raise wsgi.conflict_for_state(e, 'delete', id) from None
        return wsgi.Result(None, 204)

    # -- actions --------------------------------------------------------------

    def action(self, req, id, body):
        if not isinstance(body, dict) or len(body) != 1:
            raise wsgi.Fault(400, 'Malformed request body')
        name = next(iter(body))
        handler = self._ACTIONS.get(name)
        if handler is None:
            raise wsgi.Fault(400, 'There is no such action: %s' % name)
        schemas.validate(schemas.for_version(req.api_version,
                                             schemas.ACTIONS[name]), body)
        rule = self._ACTION_RULES[name]
        # An action answers 202 with no body: the faults are not read.
        inst = self._get(req, id, rule, faults=False)
        try:
            handler(self, req, inst, body[name])
        except exception.InstanceInvalidState as e:
            raise wsgi.conflict_for_state(e, name.replace('os-', ''),
                                          id) from None
        return wsgi.Result(None, 202)

    # The handlers get the instance the policy check read (as Nova's
    # actions get the instance object), so that it is read once.

    def _shelve(self, req, inst, value):
        """Nova ignores the value; ``{"lifecycle:keep_memory": bool}``
        in it chooses a hibernate-shelve (any microversion)."""
        keep_memory = None
        if isinstance(value, dict):
            keep_memory = value.get(names.API_KEEP_MEMORY)
        self.compute.shelve(req.context, inst.uuid, keep_memory=keep_memory,
                            instance=inst)

    def _shelve_offload(self, req, inst, _value):
        self.compute.shelve_offload(req.context, inst.uuid, instance=inst)

    def _start(self, req, inst, _value):
        self.compute.start(req.context, inst.uuid, instance=inst)

    def _stop(self, req, inst, _value):
        self.compute.stop(req.context, inst.uuid, instance=inst)

    def _unshelve(self, req, inst, value):
        """2.77 may name an availability zone, 2.91 a host and a null zone
        (unpin); older microversions ignore the body's value, as Nova."""
        kwargs = {}
        if value and req.is_supported('2.77') and 'availability_zone' in value:
            kwargs['availability_zone'] = value['availability_zone']
        if value and req.is_supported('2.91'):
            kwargs['host'] = value.get('host')
            if kwargs['host']:
                req.context.can(SHELVE % 'unshelve_to_host',
                                {'project_id': inst.project_id,
                                 'user_id': inst.user_id})
        self.compute.unshelve(req.context, inst.uuid, instance=inst,
                              **kwargs)

    _ACTIONS = {'shelve': _shelve, 'shelveOffload': _shelve_offload,
                'unshelve': _unshelve, 'os-start': _start, 'os-stop': _stop}
    _ACTION_RULES = {'shelve': SHELVE % 'shelve',
                     'shelveOffload': SHELVE % 'shelve_offload',
                     'unshelve': SHELVE % 'unshelve',
                     'os-start': SERVERS % 'start',
                     'os-stop': SERVERS % 'stop'}


def _without_image_root(image_ref: str | None,
                        bdms: list[dict] | None) -> list[dict] | None:
    """``block_device_mapping_v2`` without the mapping python-openstackclient
    adds for ``--image`` (``source_type image``, ``destination_type local``,
    ``boot_index 0``): with ``imageRef`` set, Nova takes it as the image
    root disk it describes anyway. Without ``imageRef``, or on another boot
    index, Nova refuses image-to-local mappings with this message."""
    if not bdms:
        return bdms
    rest = []
    for bdm in bdms:
        if (bdm.get('source_type') != 'image' or
                bdm.get('destination_type', 'local') != 'local'):
            rest.append(bdm)
            continue
        if not bdm.get('uuid'):
            raise wsgi.Fault(400, 'Block Device Mapping is Invalid: '
                                  'Missing device UUID.')
        boot_index = bdm.get('boot_index')
        if not image_ref or boot_index is None or int(boot_index) != 0:
            raise wsgi.Fault(400, 'Block Device Mapping is Invalid: '
                                  'Mapping image to local is not supported.')
        if bdm['uuid'] != image_ref:
            raise wsgi.Fault(400, 'Block Device Mapping is Invalid: the '
                                  'image mapping with boot_index 0 names '
                                  'image %s, imageRef %s.'
                             % (bdm['uuid'], image_ref))
    return rest


def connect(router: wsgi.Router, controller: ServersController) -> None:
    router.connect('/servers', 'GET', controller.index)
    router.connect('/servers', 'POST', controller.create)
    router.connect('/servers/detail', 'GET', controller.detail)
    router.connect('/servers/{id}', 'GET', controller.show)
    router.connect('/servers/{id}', 'DELETE', controller.delete)
    router.connect('/servers/{id}/action', 'POST', controller.action)
