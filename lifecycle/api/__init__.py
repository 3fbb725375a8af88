"""The nova-compatible REST API (WebOb + Routes, no paste).

:func:`build_app` returns the WSGI application with the middleware pipeline
of Nova's api-paste.ini, outermost first: ``cors``, ``http_proxy_to_wsgi``
(scheme and host of a TLS-terminating proxy, when ``[oslo_middleware]
enable_proxy_headers_parsing``), ``healthcheck`` (``GET /healthcheck``, no
authentication), ``request_id``, ``sizelimit``, then the authentication of
``[api] auth_strategy`` (keystonemiddleware's ``auth_token`` and the
Keystone context, or noauth2) in front of the router; the version documents
at ``/`` need no authentication.
"""

from keystonemiddleware import auth_token
from oslo_middleware import cors
from oslo_middleware import healthcheck
from oslo_middleware import http_proxy_to_wsgi
from oslo_middleware import request_id
from oslo_middleware import sizelimit

from lifecycle.api import aggregates
from lifecycle.api import auth
from lifecycle.api import flavors
from lifecycle.api import hypervisors
from lifecycle.api import images
from lifecycle.api import servers
from lifecycle.api import versions
from lifecycle.api import wsgi
from lifecycle.conf import CONF

# What a browser client may send and read (Nova's set_defaults of cors).
_CORS_HEADERS = {
    'allow_headers': ['X-Auth-Token', 'X-Openstack-Request-Id',
                      'X-Identity-Status', 'X-Roles', 'X-Service-Catalog',
                      'X-User-Id', 'X-Tenant-Id',
                      'X-OpenStack-Nova-API-Version',
                      'OpenStack-API-Version'],
    'expose_headers': ['X-Auth-Token', 'X-Openstack-Request-Id',
                       'X-Subject-Token', 'X-Service-Token',
                       'X-OpenStack-Nova-API-Version',
                       'OpenStack-API-Version'],
    'allow_methods': ['GET', 'PUT', 'POST', 'DELETE', 'PATCH']}


cors.set_defaults(**_CORS_HEADERS)

#: Where oslo.middleware's healthcheck answers (Nova's path); no
#: authentication, for load balancers.
HEALTHCHECK_PATH = '/healthcheck'


class _Mount:
    """Applications at fixed paths in front of ``app`` (what paste's
    urlmap does for Nova's ``/healthcheck``)."""

    def __init__(self, app, mounts: dict) -> None:
        self.app, self.mounts = app, mounts

    def __call__(self, environ, start_response):
        mounted = self.mounts.get(environ.get('PATH_INFO', '').rstrip('/'))
        return (mounted or self.app)(environ, start_response)


def build_router(compute_api, db, image_service) -> wsgi.Router:
    """The router alone (no authentication: it refuses every request but
    the version documents)."""
    router = wsgi.Router('/v2.1')
    versions.connect(router)
    servers.connect(router, servers.ServersController(compute_api, db))
    flavors.connect(router, flavors.FlavorsController(db))
    images.connect(router, images.ImagesController(image_service))
    hypervisors.connect(router, hypervisors.HypervisorsController(db))
    aggregates.connect(router, aggregates.AggregatesController(db),
                       aggregates.StorageGroupsController(db))
    return router


def authenticated(app):
    """``app`` behind the authentication of ``[api] auth_strategy``."""
    if CONF.api.auth_strategy == 'noauth2':
        return auth.NoAuth2(app)
    return auth_token.AuthProtocol(auth.KeystoneContext(app),
                                   {'oslo_config_config': CONF})


def build_app(compute_api, db, image_service):
    """The WSGI application serving ``/`` and ``/v2.1``."""
    router = build_router(compute_api, db, image_service)
    app = auth.Unauthenticated(authenticated(router), router)
    app = sizelimit.RequestBodySizeLimiter(app, CONF)
    # sizelimit is the backstop of any body, chunked ones included; [api]
    # max_request_body_size answers first, with Nova's fault body.
    CONF.set_default('max_request_body_size', 16 << 20,
                     group='oslo_middleware')
    app = request_id.RequestId(app, CONF)
    app = _Mount(app, {HEALTHCHECK_PATH: healthcheck.Healthcheck(None, CONF)})
    app = http_proxy_to_wsgi.HTTPProxyToWSGI(app, CONF)
    return cors.CORS(app, CONF)
