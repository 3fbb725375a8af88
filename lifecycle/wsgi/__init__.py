"""WSGI entry points for the servers operators run (uwsgi, gunicorn,
mod_wsgi). Importing this package selects oslo.service's
threading backend, before oslo.messaging (which imports oslo.service) picks
the eventlet default: the services run on threads only."""

from oslo_service import backend as _service_backend

try:
    _service_backend.init_backend(_service_backend.BackendType.THREADING)
except _service_backend.exceptions.BackendAlreadySelected:
    # Imported into a process that chose already (a test run that imported
    # oslo.messaging first): lifecycle.service checks what it got.
    pass
