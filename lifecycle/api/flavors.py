"""``/flavors``: list, show and Nova's flavor-manage create."""

from oslo_utils import strutils
from oslo_utils import uuidutils

from lifecycle import exception
from lifecycle.api import schemas
from lifecycle.api import servers
from lifecycle.api import views
from lifecycle.api import wsgi
from lifecycle.policies import admin as policies

# Nova's flavor sort keys that are columns here; the others sort by flavorid.
_SORT_ATTRS = {'created_at', 'description', 'ephemeral_gb', 'flavorid',
               'id', 'is_public', 'memory_mb', 'name', 'root_gb', 'swap',
               'updated_at', 'vcpus'}


def _int_filter(req, key: str) -> int | None:
    if key not in req.GET:
        return None
    try:
        return int(req.GET[key])
    except ValueError:
        raise wsgi.Fault(400, 'Invalid %s filter [%s]' % (
            key, req.GET[key])) from None


class FlavorsController:
    def __init__(self, db) -> None:
        self.db = db

    def _list(self, req) -> list:
        limit, marker = servers.paging(req, schemas.FLAVOR_INDEX_QUERY)
        flavors = self.db.flavor_get_all()
        is_public = req.GET.get('is_public')
        if is_public is None:
            flavors = [f for f in flavors if f.is_public]
        elif is_public.strip().lower() != 'none':
            try:
                wanted = strutils.bool_from_string(is_public, strict=True)
            except ValueError:
                raise wsgi.Fault(400, 'Invalid is_public filter [%s]' %
                                 is_public) from None
            flavors = [f for f in flavors if bool(f.is_public) == wanted]
        min_ram, min_disk = (_int_filter(req, 'minRam'),
                             _int_filter(req, 'minDisk'))
        if min_ram is not None:
            flavors = [f for f in flavors if f.memory_mb >= min_ram]
        if min_disk is not None:
            flavors = [f for f in flavors if f.root_gb >= min_disk]
        key = req.GET.get('sort_key') or 'flavorid'
        key = key if key in _SORT_ATTRS else 'flavorid'
        flavors.sort(key=lambda f: (getattr(f, key) is None,
                                    getattr(f, key), f.flavorid),
                     reverse=req.GET.get('sort_dir') == 'desc')
        return servers.page(flavors, limit, marker, lambda f: f.flavorid)

    def _doc(self, req, flavors, view, collection):
        doc = {'flavors': [view(req, f) for f in flavors]}
        next_links = views.collection_links(
            req, [f.flavorid for f in flavors], collection)
        if next_links:
            doc['flavors_links'] = next_links
        return doc

    def index(self, req):
        return self._doc(req, self._list(req), views.flavor_basic,
                         'flavors')

    def detail(self, req):
        return self._doc(req, self._list(req), views.flavor_detail,
                         'flavors/detail')

    def show(self, req, id):  # Nova's route argument name
        return {'flavor': views.flavor_detail(req, self.db.flavor_get(id))}

    def create(self, req, body):
        schemas.validate(schemas.for_version(req.api_version,
                                             schemas.FLAVOR_CREATE), body)
        vals = body['flavor']
        flavorid = vals.get('id')
        values = {
            'flavorid': (str(flavorid) if flavorid not in (None, '')
                         else uuidutils.generate_uuid()),
            'name': vals['name'].strip(),
            'memory_mb': int(vals['ram']),
            'vcpus': int(vals['vcpus']),
            'root_gb': int(vals['disk']),
            'ephemeral_gb': int(vals.get('OS-FLV-EXT-DATA:ephemeral', 0)),
            'swap': int(vals.get('swap', 0)),
            'is_public': strutils.bool_from_string(
                vals.get('os-flavor-access:is_public', True), strict=True),
            'description': (vals.get('description')
                            if req.is_supported('2.55') else None),
        }
        try:
            flavor = self.db.flavor_create(values)
        except exception.FlavorExists as e:
            if e.kwargs.get('key') == 'id':
                raise wsgi.Fault(409, 'Flavor with ID %s already exists.' %
                                 values['flavorid']) from None
            raise
        return {'flavor': views.flavor_detail(req, flavor)}


def connect(router: wsgi.Router, controller: FlavorsController) -> None:
    router.connect('/flavors', 'GET', controller.index)
    router.connect('/flavors', 'POST', wsgi.authorize(
        policies.FLAVOR_MANAGE % 'create')(controller.create))
    router.connect('/flavors/detail', 'GET', controller.detail)
    router.connect('/flavors/{id}', 'GET', controller.show)
