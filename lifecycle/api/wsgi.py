"""WSGI plumbing of the nova-compatible REST API: microversions, routing,
Nova-shaped faults and a small threaded HTTP server.

Everything here follows ``nova.api.openstack.wsgi``: the version headers
(``OpenStack-API-Version: compute X.Y`` and the legacy
``X-OpenStack-Nova-API-Version``), the fault body
``{"<faultName>": {"code": N, "message": "..."}}`` and the messages of the
common errors, so that clients written for Nova see the same answers.
"""

import functools
import io
import json
import re
import socket
import socketserver
import threading
from wsgiref import simple_server

import oslo_messaging as messaging
import routes
import webob
from oslo_log import log as logging
from oslo_utils import uuidutils

from lifecycle import context as lc_context
from lifecycle import exception
from lifecycle.conf import CONF

LOG = logging.getLogger(__name__)

MIN_VERSION = '2.1'
MAX_VERSION = '2.91'
VERSION_HEADER = 'OpenStack-API-Version'
LEGACY_VERSION_HEADER = 'X-OpenStack-Nova-API-Version'
SERVICE_TYPE = 'compute'

# Nova's ``Fault._fault_names``; any other status is a "computeFault".
FAULT_NAMES = {400: 'badRequest', 401: 'unauthorized', 403: 'forbidden',
               404: 'itemNotFound', 405: 'badMethod',
               409: 'conflictingRequest', 413: 'overLimit',
               415: 'badMediaType', 429: 'overLimit',
               501: 'notImplemented', 503: 'serviceUnavailable'}

NOT_FOUND = 'The resource could not be found.'
UNEXPECTED = ('Unexpected API Error. Please report this to the operators '
              'of this cloud and attach the lifecycle API log if possible.\n'
              '%s')
_VERSION_RE = re.compile(r'^([1-9]\d*)\.([1-9]\d*|0)$')
_DRAIN_LIMIT = 16 << 20


# -- microversions ------------------------------------------------------------

@functools.total_ordering
class APIVersion:
    """A microversion ``X.Y``, ordered like Nova's APIVersionRequest; it
    compares with version strings too."""

    __slots__ = ('major', 'minor')

    def __init__(self, version: str) -> None:
        match = (_VERSION_RE.match(version) if isinstance(version, str)
                 else None)
        if not match:
            raise Fault(400, 'API Version String %s is of invalid format. '
                             'Must be of format MajorNum.MinorNum.' % version)
        self.major, self.minor = int(match.group(1)), int(match.group(2))

    @staticmethod
    def _key(value) -> tuple[int, int]:
        value = value if isinstance(value, APIVersion) else APIVersion(value)
        return value.major, value.minor

    def __eq__(self, other) -> bool:
        return self._key(self) == self._key(other)

    def __lt__(self, other) -> bool:
        return self._key(self) < self._key(other)

    def __hash__(self) -> int:
        return hash(self._key(self))

    def __str__(self) -> str:
        return '%d.%d' % (self.major, self.minor)

    __repr__ = __str__


def requested_version(headers) -> str | None:
    """The version string a request asks for, as ``microversion_parse``:
    the last ``compute`` entry of ``OpenStack-API-Version`` (entries are
    comma-separated, possibly over several headers), else the last value of
    the legacy header, else None."""
    standard = headers.get(VERSION_HEADER)
    if standard:
        for entry in reversed(standard.split(',')):
            parts = entry.split(None, 1)
            if len(parts) == 2 and parts[0].lower() == SERVICE_TYPE:
                return parts[1].strip()
    legacy = headers.get(LEGACY_VERSION_HEADER)
    if legacy is not None:
        return legacy.split(',')[-1].strip()
    return None


def negotiate(headers) -> APIVersion:
    """The microversion to serve: 2.1 when none is asked, the maximum for
    ``latest``; 400 for a malformed one, 406 outside [MIN, MAX]."""
    asked = requested_version(headers)
    if asked is None:
        return APIVersion(MIN_VERSION)
    if asked == 'latest':
        return APIVersion(MAX_VERSION)
    version = APIVersion(asked)
    if not APIVersion(MIN_VERSION) <= version <= APIVersion(MAX_VERSION):
        raise Fault(406, 'Version %s is not supported by the API. Minimum is '
                         '%s and maximum is %s.' % (version, MIN_VERSION,
                                                    MAX_VERSION),
                    version=version)
    return version


# -- faults -------------------------------------------------------------------

class Fault(Exception):
    """An error answered with Nova's fault body."""

    def __init__(self, code: int, message: str = NOT_FOUND,
                 version: APIVersion | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.version = version


def fault_body(code: int, message: str) -> dict:
    return {FAULT_NAMES.get(code, 'computeFault'): {'code': code,
                                                    'message': message}}


def fault_from_exception(exc: BaseException) -> Fault:
    """Map an exception to a Fault; unexpected ones are logged with their
    traceback and answered without it."""
    if isinstance(exc, Fault):
        return exc
    if isinstance(exc, exception.LifecycleException):
        code = exc.code if exc.code in (400, 403, 404, 409) else 500
        if code == 500:
            LOG.error('API request failed: %s', exc.format_message(),
                      exc_info=exc)
        return Fault(code, exc.format_message())
    if isinstance(exc, messaging.MessageDeliveryFailure):
        # The bus stayed unreachable through [DEFAULT] rpc_send_retries; the
        # accepted task is ended by the conductor's stuck-task check.
        LOG.warning('API request could not reach the services: %s', exc)
        return Fault(503, 'The request could not be sent to the services; '
                          'try again later.')
    LOG.error('Unexpected exception in API method', exc_info=exc)
    return Fault(500, UNEXPECTED % type(exc))


def conflict_for_state(exc: exception.InstanceInvalidState, action: str,
                       server_id: str) -> Fault:
    """Nova's ``raise_http_conflict_for_instance_invalid_state``."""
    attr, state = exc.kwargs.get('attr'), exc.kwargs.get('state')
    if attr is not None and 'state' in exc.kwargs:
        return Fault(409, "Cannot '%s' instance %s while it is in %s %s" % (
            action, server_id, attr, state))
    return Fault(409, "Instance %s is in an invalid state for '%s'" % (
        server_id, action))


# -- requests and responses ---------------------------------------------------

class Request(webob.Request):
    api_version: APIVersion | None = None
    context: lc_context.RequestContext | None = None
    project_in_url: str = ''

    def is_supported(self, version: str) -> bool:
        return self.api_version is not None and self.api_version >= version


class Result:
    """What a controller returns: a JSON body (or None), a status code and
    extra headers."""

    def __init__(self, body: dict | None = None, code: int = 200,
                 headers: dict | None = None) -> None:
        self.body, self.code, self.headers = body, code, headers or {}


def _respond(code: int, body: dict | None, headers: dict | None,
             version: APIVersion | None) -> webob.Response:
    resp = webob.Response(status=code)
    if body is not None:
        resp.content_type = 'application/json'
        resp.charset = 'UTF-8'
        resp.text = json.dumps(body)
    else:
        resp.headers.pop('Content-Type', None)
    for key, value in (headers or {}).items():
        resp.headers[key] = str(value)
    if version is not None:
        resp.headers[VERSION_HEADER] = '%s %s' % (SERVICE_TYPE, version)
        resp.headers[LEGACY_VERSION_HEADER] = str(version)
        resp.headers.add('Vary', VERSION_HEADER)
        resp.headers.add('Vary', LEGACY_VERSION_HEADER)
    return resp


def fault_response(fault: Fault, version: APIVersion | None = None
                   ) -> webob.Response:
    if fault.code >= 500:
        LOG.info('Returning %s to user: %s', fault.code, fault.message)
    else:
        LOG.debug('Returning %s to user: %s', fault.code, fault.message)
    return _respond(fault.code, fault_body(fault.code, fault.message), None,
                    fault.version or version)


# -- the application ----------------------------------------------------------

class Router:
    """Routes + dispatch. ``connect(path, method, handler)`` serves
    ``<prefix><path>`` and, as Nova, ``<prefix>/{project_id}<path>``;
    ``handler(req, **route_args)`` also gets ``body=`` for POST and PUT and
    returns a dict (200), a :class:`Result` or None."""

    def __init__(self, prefix: str = '/v2.1') -> None:
        self.prefix = prefix
        self.mapper = routes.Mapper()
        self.mapper.minimization = False
        self.mapper.explicit = True
        self._targets: list[tuple] = []

    def connect(self, path: str, method: str, handler, *,
                versioned: bool = True, absolute: bool = False) -> None:
        paths = [path] if absolute else [
            self.prefix + path,
            self.prefix + '/{project_id:[0-9a-f-]+}' + path]
        self._targets.append((handler, versioned))
        for full in paths:
            # Routes turns defaults into strings: keep only an index there.
            self.mapper.connect(None, full, target=len(self._targets) - 1,
                                conditions={'method': [method]})

    def __call__(self, environ, start_response):
        req = Request(environ)
        version = None
        request_id = 'req-' + uuidutils.generate_uuid()
        headers = {'x-openstack-request-id': request_id,
                   'x-compute-request-id': request_id}
        try:
            _check_body_size(req)
            match = self.mapper.match(environ=environ)
            if match is None:
                raise Fault(404, NOT_FOUND)
            args = dict(match)
            handler, versioned = self._targets[int(args.pop('target'))]
            if versioned:
                version = req.api_version = negotiate(req.headers)
            req.context = _make_context(req, args.pop('project_id', None),
                                        request_id)
            _check_content_type(req)
            if req.method in ('POST', 'PUT'):
                args['body'] = _json_body(req)
            result = handler(req, **args)
        except Exception as exc:  # noqa: BLE001 - every error is a fault
            fault = fault_from_exception(exc)
            resp = fault_response(fault, version)
        else:
            if not isinstance(result, Result):
                result = Result(result)
            resp = _respond(result.code, result.body, result.headers,
                            version)
        for key, value in headers.items():
            resp.headers[key] = value
        return resp(environ, start_response)


def _check_body_size(req: Request) -> None:
    """413 for a body above ``[api] max_request_body_size``."""
    limit = CONF.api.max_request_body_size
    length = req.content_length
    if length is None or length <= limit:
        return
    if length <= _DRAIN_LIMIT:
        # Read what the client sends so it sees the answer, not a reset.
        stream = req.environ['wsgi.input']
        remaining = length
        while remaining > 0:
            chunk = stream.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)
    req.environ['wsgi.input'] = io.BytesIO()
    req.environ['CONTENT_LENGTH'] = '0'
    raise Fault(413, 'Request is too large. Larger than '
                      'max_request_body_size (%d).' % limit)


def _check_content_type(req: Request) -> None:
    """Nova's rule: no type or text/plain is taken as JSON; anything but
    JSON is 415."""
    if req.content_type and req.content_type not in (
            'text/plain', 'application/json',
            'application/vnd.openstack.compute+json'):
        raise Fault(415, 'Unsupported Content-Type')


def _json_body(req: Request):
    """The decoded JSON body, None when empty; 400 when it is not JSON."""
    if not req.content_length:
        return None
    try:
        return json.loads(req.body)
    except ValueError:
        raise Fault(400, 'Malformed request body') from None


def _make_context(req: Request, url_project: str | None,
                  request_id: str) -> lc_context.RequestContext:
    """Noauth context: ``X-User-Id``/``X-Project-Id`` or admin/admin. A
    project ID in the URL must match the context's, as in Nova."""
    user = req.headers.get('X-User-Id') or 'admin'
    project = req.headers.get('X-Project-Id') or url_project or 'admin'
    if url_project and url_project != project:
        raise Fault(400, "Malformed request URL: URL's project_id '%s' "
                         "doesn't match Context's project_id '%s'" % (
                             url_project, project))
    req.project_in_url = url_project or ''
    ctx = lc_context.RequestContext(
        user_id=user, project_id=project, is_admin=True,
        request_id=request_id,
        global_request_id=req.headers.get('X-Openstack-Request-Id'))
    return ctx


# -- the server ---------------------------------------------------------------

class _ThreadingWSGIServer(socketserver.ThreadingMixIn,
                           simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 resets clients when a burst of
    # requests arrives (mass unshelve); Nova's WSGI server uses 4096.
    request_queue_size = 4096

    def handle_error(self, request, client_address):
        # A client that went away mid-response, not a server error.
        LOG.debug('Connection from %s ended with an error',
                  client_address, exc_info=True)


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - base signature
        LOG.debug('%s %s', self.address_string(), format % args)


class APIServer:
    """``wsgiref`` with a thread per request, in a background thread."""

    def __init__(self, app, host: str, port: int) -> None:
        server_cls = _ThreadingWSGIServer
        if ':' in host:
            server_cls = type('_ThreadingWSGIServer6', (_ThreadingWSGIServer,),
                              {'address_family': socket.AF_INET6})
        self.host = host
        self._server = simple_server.make_server(
            host, port, app, server_class=server_cls,
            handler_class=_QuietHandler)
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name='lifecycle-api', daemon=True)
        self._thread.start()
        LOG.info('REST API listening on %s port %d', self.host, self.port)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

