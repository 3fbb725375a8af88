"""``/servers``: list, show, create, delete and the lifecycle actions, as
Nova's ``servers`` and ``shelve`` controllers answer them."""

import re
import secrets
import urllib.parse

from oslo_log import log as logging

from lifecycle import exception
from lifecycle import states
from lifecycle.api import schemas
from lifecycle.api import views
from lifecycle.api import wsgi
from lifecycle.conf import CONF

LOG = logging.getLogger(__name__)

# Nova's ``common._STATE_MAP`` reduced to the statuses this service has.
_STATUS_TO_VM_STATES = {}
for _vm_state, _status in states._STATUS.items():
    _STATUS_TO_VM_STATES.setdefault(_status, []).append(_vm_state)

# Filters applied here (Nova lets the database do it); the other filter
# names Nova knows are accepted and ignored, as Nova ignores those it strips.
_EXACT_FILTERS = {'uuid': 'uuid', 'vm_state': 'vm_state',
                  'task_state': 'task_state', 'host': 'host',
                  'user_id': 'user_id', 'project_id': 'project_id',
                  'tenant_id': 'project_id', 'image': 'image_ref',
                  'image_ref': 'image_ref', 'flavor': 'flavorid'}
_REGEX_FILTERS = {'name': 'display_name', 'display_name': 'display_name',
                  'availability_zone': 'availability_zone'}


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


class ServersController:
    def __init__(self, compute, db) -> None:
        """``compute``: lifecycle.compute.api.API; ``db``: Database."""
        self.compute = compute
        self.db = db

    # -- reads ----------------------------------------------------------------

    def _filters(self, req) -> tuple[dict, dict] | None:
        """(exact, regex) filters; None when a status matches nothing."""
        exact, regex = {}, {}
        for key, attr in _EXACT_FILTERS.items():
            if key in req.GET:
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
            if key in req.GET:
                try:
                    regex[attr] = re.compile(req.GET.getall(key)[-1])
                except re.error:
                    raise wsgi.Fault(
                        400, 'Invalid input for query parameters %s. '
                             'Value: %s. It is not a valid regular '
                             'expression' % (key, req.GET[key])) from None
        return exact, regex

    def _list(self, req) -> list:
        limit, marker = paging(req, schemas.SERVER_INDEX_QUERY)
        filters = self._filters(req)
        if filters is None:
            return []
        exact, regex = filters
        try:
            if not exact and not regex:
                return self.compute.get_all(req.context, limit=limit,
                                            marker=marker)
            found = [
                inst for inst in self.compute.get_all(req.context)
                if all(getattr(inst, attr) in values
                       for attr, values in exact.items())
                and all(pattern.search(getattr(inst, attr) or '')
                        for attr, pattern in regex.items())]
        except exception.InstanceNotFound:
            raise wsgi.Fault(400, 'marker [%s] not found' % marker) from None
        return page(found, limit, marker, lambda i: i.uuid)

    def index(self, req):
        instances = self._list(req)
        doc = {'servers': [views.server_basic(req, i) for i in instances]}
        return self._with_links(req, doc, instances, 'servers')

    def detail(self, req):
        instances = self._list(req)
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

    def _detail_of(self, req, instance_uuid: str) -> dict:
        inst = self.compute.get(req.context, instance_uuid)
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

    def show(self, req, id):  # noqa: A002 - Nova's route argument name
        return {'server': self._detail_of(req, id)}

    # -- create and delete ----------------------------------------------------

    def create(self, req, body):
        schemas.validate(schemas.for_version(req.api_version,
                                             schemas.SERVER_CREATE), body)
        server = body['server']
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
        bdms = server.get('block_device_mapping_v2')
        if not server.get('imageRef') and not bdms:
            raise wsgi.Fault(400, 'Missing imageRef attribute')
        # Nova's get_id_from_href: a flavor link or a bare id.
        flavor_ref = urllib.parse.urlsplit(
            str(server['flavorRef'])).path.split('/')[-1]
        inst = self.compute.create(
            req.context, name=server['name'].strip(),
            image_ref=server.get('imageRef'), flavor_ref=flavor_ref,
            metadata=server.get('metadata') or {},
            host=server.get('host'),
            availability_zone=server.get('availability_zone'),
            block_device_mapping=bdms)
        doc = {'server': {
            'id': inst.uuid,
            'links': views.links(req, 'servers', inst.uuid),
            'OS-DCF:diskConfig': 'MANUAL',
            'security_groups': [{'name': 'default'}],
            'adminPass': server.get('adminPass') or secrets.token_urlsafe(9),
        }}
        return wsgi.Result(doc, 202,
                           {'Location': doc['server']['links'][0]['href']})

    def delete(self, req, id):  # noqa: A002
        try:
            self.compute.delete(req.context, id)
        except exception.InstanceNotFound:
            raise wsgi.Fault(404, 'Instance could not be found') from None
        except exception.InstanceInvalidState as e:
            raise wsgi.conflict_for_state(e, 'delete', id) from None
        return wsgi.Result(None, 204)

    # -- actions --------------------------------------------------------------

    def action(self, req, id, body):  # noqa: A002
        if not isinstance(body, dict) or len(body) != 1:
            raise wsgi.Fault(400, 'Malformed request body')
        name = next(iter(body))
        handler = self._ACTIONS.get(name)
        if handler is None:
            raise wsgi.Fault(400, 'There is no such action: %s' % name)
        schemas.validate(schemas.for_version(req.api_version,
                                             schemas.ACTIONS[name]), body)
        try:
            handler(self, req, id, body[name])
        except exception.InstanceInvalidState as e:
            raise wsgi.conflict_for_state(e, name.replace('os-', ''),
                                          id) from None
        return wsgi.Result(None, 202)

    def _shelve(self, req, id, _value):  # noqa: A002
        self.compute.shelve(req.context, id)

    def _shelve_offload(self, req, id, _value):  # noqa: A002
        self.compute.shelve_offload(req.context, id)

    def _start(self, req, id, _value):  # noqa: A002
        self.compute.start(req.context, id)

    def _stop(self, req, id, _value):  # noqa: A002
        self.compute.stop(req.context, id)

    def _unshelve(self, req, id, value):  # noqa: A002
        """2.77 may name an availability zone, 2.91 a host and a null zone
        (unpin); older microversions ignore the body's value, as Nova."""
        kwargs = {}
        if value and req.is_supported('2.77') and 'availability_zone' in value:
            kwargs['availability_zone'] = value['availability_zone']
        if value and req.is_supported('2.91'):
            kwargs['host'] = value.get('host')
        self.compute.unshelve(req.context, id, **kwargs)

    _ACTIONS = {'shelve': _shelve, 'shelveOffload': _shelve_offload,
                'unshelve': _unshelve, 'os-start': _start, 'os-stop': _stop}


def connect(router: wsgi.Router, controller: ServersController) -> None:
    router.connect('/servers', 'GET', controller.index)
    router.connect('/servers', 'POST', controller.create)
    router.connect('/servers/detail', 'GET', controller.detail)
    router.connect('/servers/{id}', 'GET', controller.show)
    router.connect('/servers/{id}', 'DELETE', controller.delete)
    router.connect('/servers/{id}/action', 'POST', controller.action)
