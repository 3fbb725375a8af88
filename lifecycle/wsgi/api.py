"""The REST API as a WSGI application, for uwsgi, gunicorn or mod_wsgi
(what ``nova.wsgi.osapi_compute`` is to Nova)::

    LIFECYCLE_CONFIG_FILES=/etc/lifecycle/lifecycle.conf \\
        gunicorn --workers 4 --threads 8 --bind 0.0.0.0:8774 \\
        'lifecycle.wsgi.api:application'

    uwsgi --http-socket :8774 --processes 4 --threads 8 \\
        --env LIFECYCLE_CONFIG_FILES=/etc/lifecycle/lifecycle.conf \\
        --module lifecycle.wsgi.api:application

``LIFECYCLE_CONFIG_FILES`` lists the configuration files (separated by
``,``; default ``/etc/lifecycle/lifecycle.conf``), read in order as
``--config-file`` options. The application is made at import, in each
worker process, with the checks ``lifecycle-api`` runs at start (message
bus, database schema, image source): a worker of a deployment that cannot
work does not start. The server's own limits (workers, threads, timeouts,
TLS) replace the ``[wsgi]`` options of the embedded server; ``[api] host``
and ``port`` are not read.
"""

import os
import sys

from oslo_log import log as logging

from lifecycle import exception
from lifecycle import api as rest_api
from lifecycle import deploy
from lifecycle import rpc
from lifecycle.compute import api as compute_api
from lifecycle.conf import CONF

LOG = logging.getLogger(__name__)

NAME = 'lifecycle-api'
CONFIG_FILES_ENV = 'LIFECYCLE_CONFIG_FILES'
DEFAULT_CONFIG_FILES = ('/etc/lifecycle/lifecycle.conf',)


def config_files() -> list[str]:
    value = os.environ.get(CONFIG_FILES_ENV)
    if not value:
        return [f for f in DEFAULT_CONFIG_FILES if os.path.exists(f)]
    return [f.strip() for f in value.split(',') if f.strip()]


def init_application():
    """Parse the configuration, check the deployment, build the pipeline."""
    argv = []
    for path in config_files():
        argv += ['--config-file', path]
    deploy.parse_config(argv)
    try:
        deploy.check_transport()
        images = deploy.build_image_service(deploy.require_image_dir())
        db = deploy.open_database(NAME)
    except exception.StartupError as e:
        LOG.error('%s cannot start: %s', NAME, e.format_message())
        print('%s cannot start: %s' % (NAME, e.format_message()),
              file=sys.stderr)
        raise
    transport = rpc.get_transport(CONF)
    compute = compute_api.API(db, images,
                              deploy.conductor_rpc_client(transport),
                              deploy.compute_rpc_client(transport))
    LOG.info('%s WSGI application ready (auth_strategy %s)', NAME,
             CONF.api.auth_strategy)
    return rest_api.build_app(compute, db, images)


application = init_application()
