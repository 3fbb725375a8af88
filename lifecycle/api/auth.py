"""Who is calling: the request context from Keystone (keystonemiddleware's
``auth_token`` in front) or from Nova's ``noauth2`` convention, put in the
WSGI environment for the router (``ENV_CONTEXT``).

Nova's pipelines (api-paste.ini) are ``authtoken keystonecontext`` and
``noauth2``; these are the same two middlewares, chosen by ``[api]
auth_strategy`` in :func:`lifecycle.api.build_app`.
"""

import re

import webob
import webob.dec
from oslo_log import log as logging
from oslo_middleware import request_id as oslo_request_id
from oslo_serialization import jsonutils

from lifecycle import context as lc_context
from lifecycle.api import wsgi
from lifecycle.conf import CONF

LOG = logging.getLogger(__name__)

ENV_CONTEXT = wsgi.ENV_CONTEXT
# keystoneauth1's ``none`` plugin (openstacksdk ``auth_type='none'``, the
# openstack client's ``--os-auth-type none``) always sends this token.
KEYSTONEAUTH_NOAUTH_TOKEN = 'notused'
_PROJECT_IN_PATH = re.compile(r'^/v2\.1/([0-9a-f-]+)(/|$)')


def _remote_address(req: webob.Request) -> str | None:
    if CONF.api.use_forwarded_for:
        return req.headers.get('X-Forwarded-For', req.remote_addr)
    return req.remote_addr


def _request_ids(req: webob.Request) -> dict:
    """The request id oslo.middleware's ``request_id`` gave the request and
    the caller's validated ``X-OpenStack-Request-ID`` (global)."""
    return {'request_id': req.environ.get(oslo_request_id.ENV_REQUEST_ID),
            'global_request_id': req.environ.get(
                oslo_request_id.GLOBAL_REQ_ID)}


def _unauthorized() -> webob.Response:
    fault = wsgi.Fault(401, 'The request you have made requires '
                            'authentication.')
    return wsgi.fault_response(fault)


class NoAuth2:
    """Nova's ``noauth2`` (NoAuthMiddlewareV2_18): ``X-Auth-Token:
    USER:PROJECT`` (PROJECT defaults to USER) is USER in PROJECT, an admin
    only when USER is ``admin``. A request without a token is the admin of
    the project in the URL, else of project ``admin`` -- where Nova answers
    with a token to use, so that clients configured with ``auth_type =
    none`` (openstacksdk, the walkthrough) need none; keystoneauth1's
    placeholder token ``notused`` of that plugin counts as none."""

    def __init__(self, application) -> None:
        self.application = application

    @webob.dec.wsgify
    def __call__(self, req: webob.Request):
        token = req.headers.get('X-Auth-Token')
        if token and token != KEYSTONEAUTH_NOAUTH_TOKEN:
            user_id, _sep, project_id = token.partition(':')
            project_id = project_id or user_id
        else:
            match = _PROJECT_IN_PATH.match(req.path_info)
            user_id, project_id = 'admin', (match.group(1) if match
                                            else 'admin')
        if not user_id:
            return _unauthorized()
        req.environ[ENV_CONTEXT] = lc_context.noauth_context(
            user_id, project_id, remote_address=_remote_address(req),
            **_request_ids(req))
        return self.application


class KeystoneContext:
    """Nova's ``NovaKeystoneContext``: the context from the headers
    keystonemiddleware set after validating the token (user, project,
    roles, the token itself, its catalog); 401 without a user."""

    def __init__(self, application) -> None:
        self.application = application

    @webob.dec.wsgify
    def __call__(self, req: webob.Request):
        catalog = None
        header = req.headers.get('X-Service-Catalog')
        if header:
            try:
                catalog = jsonutils.loads(header)
            except ValueError:
                return wsgi.fault_response(wsgi.Fault(
                    500, 'Invalid service catalog json.'))
        ctx = lc_context.RequestContext.from_environ(
            req.environ,
            user_auth_plugin=req.environ.get('keystone.token_auth'),
            service_catalog=catalog,
            remote_address=_remote_address(req),
            **_request_ids(req))
        if ctx.user_id is None:
            LOG.debug('Neither X_USER_ID nor X_USER found in request')
            return _unauthorized()
        ctx.is_admin = ctx.can('context_is_admin', fatal=False)
        req.environ[ENV_CONTEXT] = ctx
        return self.application


class Unauthenticated:
    """Routes the version documents past authentication (as Nova's
    api-paste serves ``/`` without it): they reveal nothing, and clients
    read them to discover the API before they have a token."""

    def __init__(self, authenticated, versions) -> None:
        self.authenticated = authenticated
        self.versions = versions

    def __call__(self, environ, start_response):
        if environ.get('PATH_INFO', '') in ('', '/'):
            environ.setdefault(ENV_CONTEXT, lc_context.RequestContext(
                overwrite=False))
            return self.versions(environ, start_response)
        return self.authenticated(environ, start_response)
