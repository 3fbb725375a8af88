"""The nova-compatible REST API (WebOb + Routes, no paste)."""

from lifecycle.api import aggregates
from lifecycle.api import flavors
from lifecycle.api import hypervisors
from lifecycle.api import images
from lifecycle.api import servers
from lifecycle.api import versions
from lifecycle.api import wsgi


def build_app(compute_api, db, image_service) -> wsgi.Router:
    """The WSGI application serving ``/`` and ``/v2.1``."""
    router = wsgi.Router('/v2.1')
    versions.connect(router)
    servers.connect(router, servers.ServersController(compute_api, db))
    flavors.connect(router, flavors.FlavorsController(db))
    images.connect(router, images.ImagesController(image_service))
    hypervisors.connect(router, hypervisors.HypervisorsController(db))
    aggregates.connect(router, aggregates.AggregatesController(db),
                       aggregates.StorageGroupsController(db))
    return router
