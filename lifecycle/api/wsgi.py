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
import threading
import time

import microversion_parse
import oslo_messaging as messaging
import routes
from cheroot import makefile as cheroot_makefile
from cheroot import server as cheroot_server
from cheroot import wsgi as cheroot_wsgi
import webob
import webob.exc
from oslo_log import log as logging
from oslo_middleware import request_id as oslo_request_id
from oslo_middleware import sizelimit
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
#: The WSGI environment key of the request context (set by lifecycle.api.auth).
ENV_CONTEXT = 'lifecycle.context'


# -- microversions ------------------------------------------------------------

def _invalid(version) -> 'Fault':
    return Fault(400, 'API Version String %s is of invalid format. Must be '
                      'of format MajorNum.MinorNum.' % version)


@functools.lru_cache(maxsize=256)
def _parsed(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a version string, once per string: views
    compare the request's version with a literal for every field of every
    server they show (an error is raised, never cached)."""
    match = _VERSION_RE.match(version)
    if not match:
        raise _invalid(version)
    return int(match.group(1)), int(match.group(2))


@functools.total_ordering
class APIVersion:
    """A microversion ``X.Y``, ordered like Nova's APIVersionRequest; it
    compares with version strings too."""

    __slots__ = ('major', 'minor')

    def __init__(self, version: str) -> None:
        if not isinstance(version, str):
            raise _invalid(version)
        self.major, self.minor = _parsed(version)

    @staticmethod
    def _key(value) -> tuple[int, int]:
        if isinstance(value, APIVersion):
            return value.major, value.minor
        if not isinstance(value, str):
            raise _invalid(value)
        return _parsed(value)

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
    """The version string a request asks for (``microversion_parse``): the
    last ``compute`` entry of ``OpenStack-API-Version``, else the legacy
    header's value, else None."""
    return microversion_parse.get_version(
        headers, service_type=SERVICE_TYPE,
        legacy_headers=[LEGACY_VERSION_HEADER])


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
        """``absolute`` paths (the version documents) are served without a
        context as well: :class:`lifecycle.api.auth.Unauthenticated` lets
        ``/`` past authentication."""
        paths = [path] if absolute else [
            self.prefix + path,
            self.prefix + '/{project_id:[0-9a-f-]+}' + path]
        self._targets.append((handler, versioned, absolute))
        for full in paths:
            # Routes turns defaults into strings: keep only an index there.
            self.mapper.connect(None, full, target=len(self._targets) - 1,
                                conditions={'method': [method]})

    def __call__(self, environ, start_response):
        req = Request(environ)
        version = None
        request_id = (environ.get(oslo_request_id.ENV_REQUEST_ID) or
                      'req-' + uuidutils.generate_uuid())
        headers = {'x-openstack-request-id': request_id,
                   'x-compute-request-id': request_id}
        try:
            _check_body_size(req)
            match = self.mapper.match(environ=environ)
            if match is None:
                raise Fault(404, NOT_FOUND)
            args = dict(match)
            handler, versioned, public = self._targets[
                int(args.pop('target'))]
            if versioned:
                version = req.api_version = negotiate(req.headers)
            req.context = _context(req, args.pop('project_id', None), public)
            _check_content_type(req)
            if req.method in ('POST', 'PUT'):
                args['body'] = _json_body(req)
            if req.context is not None:
                # Calls to Glance and Cinder made for this request find the
                # caller's context here (oslo.context's thread-local store).
                req.context.update_store()
            result = handler(req, **args)
        except Exception as exc:  # every error is a fault
            fault = fault_from_exception(exc)
            resp = fault_response(fault, version)
        else:
            if not isinstance(result, Result):
                result = Result(result)
            resp = _respond(result.code, result.body, result.headers,
                            version)
        finally:
            lc_context.clear_store()
        for key, value in headers.items():
            resp.headers[key] = value
        return resp(environ, start_response)


def authorize(rule: str):
    """A handler wrapper that asks the policy for ``rule`` first (403 with
    Nova's message when refused); the target is the caller's project, as
    Nova's ``target={}`` rules that need no resource."""
    def wrap(handler):
        @functools.wraps(handler)
        def checked(req, *args, **kwargs):
            req.context.can(rule, {'project_id': req.context.project_id,
                                   'user_id': req.context.user_id})
            return handler(req, *args, **kwargs)
        return checked
    return wrap


def _check_body_size(req: Request) -> None:
    """413 for a body above ``[api] max_request_body_size``."""
    limit = CONF.api.max_request_body_size
    length = req.content_length
    if length is None:
        # A chunked body: counted while it is read (_json_body).
        req.body_file = sizelimit.LimitingReader(req.body_file, limit)
        return
    if length <= limit:
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
    if req.content_length is None and req.is_body_readable:
        try:
            body = req.body_file.read()
        except webob.exc.HTTPRequestEntityTooLarge:
            raise Fault(413, 'Request is too large. Larger than '
                             'max_request_body_size (%d).'
                        % CONF.api.max_request_body_size) from None
    elif not req.content_length:
        return None
    else:
        body = req.body
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise Fault(400, 'Malformed request body') from None


def _context(req: Request, url_project: str | None,
             public: bool) -> lc_context.RequestContext | None:
    """The context the authentication middleware made; a request that
    reached the router without one is refused (fail closed). A project ID
    in the URL must be the context's, as in Nova."""
    ctx = req.environ.get(ENV_CONTEXT)
    if ctx is None:
        if public:
            return None
        raise Fault(401, 'The request you have made requires '
                         'authentication.')
    if url_project and url_project != ctx.project_id:
        raise Fault(400, "Malformed request URL: URL's project_id '%s' "
                         "doesn't match Context's project_id '%s'" % (
                             url_project, ctx.project_id))
    req.project_in_url = url_project or ''
    return ctx


# -- the server ---------------------------------------------------------------

class APIServer:
    """The embedded HTTP/1.1 server of ``lifecycle-api`` and
    ``lifecycle-aio`` (cheroot, in a background thread).

    At most ``[wsgi] default_pool_size`` requests run at once; accepted
    connections wait for a worker in a bounded queue and, beyond it, in the
    listen backlog. A client silent for ``[wsgi] client_socket_timeout``
    seconds is disconnected, and one that has not sent its whole request
    ``[wsgi] client_request_timeout`` seconds after its first byte gets 408
    and is disconnected, so a slow client holds a worker for that long at
    most; idle keep-alive connections wait in cheroot's selector, not in a
    worker.
    """

    def __init__(self, app, host: str, port: int) -> None:
        pool = CONF.wsgi.default_pool_size
        if not CONF.wsgi.keep_alive:
            app = _close_connections(app)
        self.host = host
        self._server = _Server(
            (host, port), app, numthreads=pool, max=pool,
            # Nova's WSGI server listens with a backlog of 4096: a burst of
            # requests (mass unshelve) must not be reset.
            request_queue_size=4096,
            timeout=CONF.wsgi.client_socket_timeout or None,
            accepted_queue_size=pool * 16,
            accepted_queue_timeout=max(CONF.wsgi.client_socket_timeout, 1),
            shutdown_timeout=5)
        self._server.max_request_header_size = (
            CONF.wsgi.max_request_header_size)
        self._server.request_timeout = CONF.wsgi.client_request_timeout
        self._server.server_name = 'lifecycle-api'
        self._server.prepare()
        self.port = self._server.bind_addr[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve,
                                        name='lifecycle-api', daemon=True)
        self._thread.start()
        LOG.info('REST API listening on %s port %d (%d worker threads)',
                 self.host, self.port, CONF.wsgi.default_pool_size)

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def _close_connections(app):
    """``[wsgi] keep_alive = false``: every answer closes its connection."""
    def wrapper(environ, start_response):
        def start(status, headers, exc_info=None):
            headers = [(k, v) for k, v in headers
                       if k.lower() != 'connection']
            headers.append(('Connection', 'close'))
            return start_response(status, headers, exc_info)
        return app(environ, start)
    return wrapper


# -- a deadline for reading each request --------------------------------------

class _RequestReader(socket.SocketIO):
    """The read side of a connection. While ``deadline`` (a monotonic time)
    is set, a read past it fails as a socket timeout does; each read waits
    for the socket timeout or until the deadline, whichever is first."""

    deadline: float | None = None

    def readinto(self, buffer) -> int | None:
        deadline = self.deadline
        if deadline is None:
            return super().readinto(buffer)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            # cheroot answers 408 to a timeout inside a request.
            raise TimeoutError('timed out')
        sock = self._sock
        timeout = sock.gettimeout()
        sock.settimeout(remaining if timeout is None
                        else min(remaining, timeout))
        try:
            return super().readinto(buffer)
        finally:
            sock.settimeout(timeout)


class _StreamReader(cheroot_makefile.StreamReader):
    def __init__(self, sock, mode: str = 'rb',
                 bufsize: int = io.DEFAULT_BUFFER_SIZE) -> None:
        # cheroot's reader over a _RequestReader instead of a SocketIO.
        super(cheroot_makefile.StreamReader, self).__init__(
            _RequestReader(sock, mode), bufsize)
        self.bytes_read = 0


class _Request(cheroot_server.HTTPRequest):
    """A request whose line, headers and body must arrive within the
    server's ``request_timeout`` from the moment a worker starts reading it
    (the connection had data: idle keep-alive time is not counted)."""

    def parse_request(self) -> None:
        reader = getattr(self.conn.rfile, 'raw', None)
        if isinstance(reader, _RequestReader) and self.server.request_timeout:
            reader.deadline = time.monotonic() + self.server.request_timeout
        super().parse_request()

    def respond(self) -> None:
        try:
            super().respond()
        finally:
            reader = getattr(self.conn.rfile, 'raw', None)
            if isinstance(reader, _RequestReader):
                reader.deadline = None


class _Connection(cheroot_server.HTTPConnection):
    RequestHandlerClass = _Request

    def __init__(self, server, sock, makefile=cheroot_makefile.MakeFile):
        super().__init__(server, sock, makefile)
        if makefile is cheroot_makefile.MakeFile:
            # Plain TCP (the embedded server has no TLS adapter).
            self.rfile.close()
            self.rfile = _StreamReader(sock, 'rb', self.rbufsize)


class _Server(cheroot_wsgi.Server):
    ConnectionClass = _Connection
    #: Seconds to receive one request; 0: no limit.
    request_timeout: float = 0
