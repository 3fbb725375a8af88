"""Version discovery: ``GET /`` lists the API versions, ``GET /v2.1``
describes v2.1 with its microversion range (what openstacksdk and
keystoneauth read to negotiate)."""

import copy

from lifecycle.api import views
from lifecycle.api import wsgi

V21 = {
    'id': 'v2.1',
    'status': 'CURRENT',
    'version': wsgi.MAX_VERSION,
    'min_version': wsgi.MIN_VERSION,
    'updated': '2013-07-23T11:33:21Z',
    'links': [{'rel': 'describedby', 'type': 'text/html',
               'href': 'http://docs.openstack.org/'}],
    'media-types': [{'base': 'application/json',
                     'type': 'application/vnd.openstack.compute+json;'
                             'version=2.1'}],
}


def index(req):
    """``GET /``: not under microversion control, as in Nova."""
    return {'versions': [{
        'id': V21['id'], 'status': V21['status'],
        'version': V21['version'], 'min_version': V21['min_version'],
        'updated': V21['updated'],
        'links': [{'rel': 'self',
                   'href': views.url_join(views.base_url(req), 'v2.1', '')}],
    }]}


def show(req):
    """``GET /v2.1`` and ``GET /v2.1/``."""
    version = copy.deepcopy(V21)
    version['links'].insert(0, {
        'rel': 'self',
        'href': views.url_join(views.base_url(req), 'v2.1', '')})
    return {'version': version}


def connect(router: wsgi.Router) -> None:
    router.connect('/', 'GET', index, versioned=False, absolute=True)
    for path in ('/v2.1', '/v2.1/'):
        router.connect(path, 'GET', show, absolute=True)
