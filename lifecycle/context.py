"""Request context that travels with every API call and RPC message."""

from oslo_context import context


class RequestContext(context.RequestContext):
    """Nova-style context; noauth requests act as an admin of project
    ``admin`` unless the caller says otherwise."""


def get_admin_context() -> RequestContext:
    return RequestContext(user_id='admin', project_id='admin', is_admin=True,
                          overwrite=False)
