"""Request context that travels with every API call and RPC message."""

from keystoneauth1 import plugin as ks_plugin
from oslo_config import cfg
from oslo_context import context

_ADMIN_ROLES = ('admin', 'member', 'reader')
_MEMBER_ROLES = ('member', 'reader')


class _ContextAuthPlugin(ks_plugin.BaseAuthPlugin):
    """The user's token as a keystoneauth1 plugin (Nova's
    ``_ContextAuthPlugin``), for calls to Glance and Cinder made as the
    user; endpoints come from the caller's ``endpoint_override`` or the
    catalog that came with the token."""

    def __init__(self, auth_token: str, service_catalog: list | None) -> None:
        super().__init__()
        self.auth_token = auth_token
        self.service_catalog = service_catalog or []

    def get_token(self, *args, **kwargs) -> str:
        return self.auth_token

    def get_endpoint(self, session, service_type=None, interface=None,
                     region_name=None, service_name=None, **kwargs):
        interfaces = interface if isinstance(interface, (list, tuple)) \
            else [interface or 'public']
        interfaces = [i[:-3] if i and i.endswith('URL') else i
                      for i in interfaces]
        for service in self.service_catalog:
            if service.get('type') != service_type:
                continue
            for wanted in interfaces:
                for endpoint in service.get('endpoints', []):
                    if (endpoint.get('interface') == wanted and
                            (not region_name or
                             endpoint.get('region') == region_name)):
                        return endpoint.get('url')
        return None


class RequestContext(context.RequestContext):
    """Nova-style context. ``service_catalog`` is the token's catalog
    (what the user may reach), ``user_auth_plugin`` keystonemiddleware's
    plugin of the request's token, neither sent over RPC as objects."""

    def __init__(self, *args, service_catalog: list | None = None,
                 user_auth_plugin=None, remote_address: str | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.remote_address = remote_address
        # Only the entries a call to Glance or Cinder may need.
        self.service_catalog = [
            s for s in (service_catalog or [])
            if s.get('type') in ('image', 'volumev3', 'block-storage',
                                 'volume')]
        self.user_auth_plugin = user_auth_plugin

    def to_dict(self) -> dict:
        values = super().to_dict()
        values['service_catalog'] = self.service_catalog
        values['remote_address'] = self.remote_address
        return values

    @classmethod
    def from_dict(cls, values: dict, **kwargs) -> 'RequestContext':
        kwargs.setdefault('service_catalog', values.get('service_catalog'))
        kwargs.setdefault('remote_address', values.get('remote_address'))
        return super().from_dict(values, **kwargs)

    def get_auth_plugin(self):
        """What authenticates a call made as this user: keystonemiddleware's
        plugin of the token, else the token itself; None without a token
        (noauth2, periodic tasks)."""
        if self.user_auth_plugin is not None:
            return self.user_auth_plugin
        if self.auth_token:
            return _ContextAuthPlugin(self.auth_token, self.service_catalog)
        return None

    def can(self, action: str, target: dict | None = None, *,
            fatal: bool = True) -> bool:
        """Nova's ``context.can``: the policy's answer for ``action``."""
        from lifecycle import policy  # policy imports conf; context must not
        return policy.authorize(self, action, target, fatal=fatal)

    def elevated(self) -> 'RequestContext':
        """A copy that is admin (the roles grant ``context_is_admin``)."""
        ctx = RequestContext.from_dict(self.to_dict())
        ctx.is_admin = True
        if 'admin' not in ctx.roles:
            ctx.roles = list(ctx.roles) + ['admin']
        ctx.user_auth_plugin = self.user_auth_plugin
        return ctx


def caller_auth(conf) -> tuple[object | None, str | None]:
    """(auth plugin, global request id) for a call to Glance or Cinder made
    for the current request, as Nova's ``service_auth.get_auth_plugin``:
    the caller's token, wrapped with a service token of ``[service_user]``
    when ``send_service_user_token``; (None, id) when the thread serves no
    caller with a token (noauth2, periodic tasks): the service then uses
    its own credentials."""
    ctx = context.get_current()
    if not isinstance(ctx, RequestContext):
        return None, None
    global_id = ctx.global_request_id or ctx.request_id
    user_auth = ctx.get_auth_plugin()
    if user_auth is None:
        return None, global_id
    try:
        send_service_token = conf.service_user.send_service_user_token
    except cfg.NoSuchOptError:
        send_service_token = False  # a ConfigOpts without the group
    if send_service_token:
        from keystoneauth1 import loading as ks_loading
        from keystoneauth1 import service_token
        service_auth = ks_loading.load_auth_from_conf_options(
            conf, 'service_user')
        if service_auth is not None:
            user_auth = service_token.ServiceTokenAuthWrapper(
                user_auth=user_auth, service_auth=service_auth)
    return user_auth, global_id


def clear_store() -> None:
    """Forget the thread's current context (oslo.context's store): a worker
    thread of the API must not carry one request's caller into the next."""
    # oslo.context has no public way to clear the thread's context.
    context._request_store.context = None  # noqa: SLF001


def noauth_context(user_id: str, project_id: str, **kwargs
                   ) -> RequestContext:
    """A noauth2 caller: admin (all three roles) only when the user is
    ``admin``, else a member and reader of ``project_id``."""
    is_admin = user_id == 'admin'
    return RequestContext(user_id=user_id, project_id=project_id,
                          is_admin=is_admin,
                          roles=list(_ADMIN_ROLES if is_admin
                                     else _MEMBER_ROLES), **kwargs)


def get_admin_context() -> RequestContext:
    return RequestContext(user_id='admin', project_id='admin', is_admin=True,
                          roles=list(_ADMIN_ROLES), overwrite=False)
