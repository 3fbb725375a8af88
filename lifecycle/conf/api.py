from oslo_config import cfg

api_group = cfg.OptGroup('api', title='REST API options')

api_opts = [
    cfg.StrOpt('auth_strategy',
               default='keystone',
               choices=[
                   ('keystone', 'keystonemiddleware ``auth_token`` validates '
                    'the ``X-Auth-Token`` of every request with Keystone '
                    '(``[keystone_authtoken]``); the roles of the token '
                    'decide what the policy allows.'),
                   ('noauth2', 'no authentication, Nova\'s ``noauth2``: '
                    '``X-Auth-Token: USER:PROJECT`` acts as USER in PROJECT, '
                    'an admin only when USER is ``admin``; a request '
                    'without a token acts as the admin of project '
                    '``admin``. For an all-in-one on the loopback '
                    'interface only: anyone who reaches the port is '
                    'whoever they say.')],
               help="""
How the REST API authenticates its callers (Nova's option of this name). The
all-in-one (``lifecycle-aio``) defaults to ``noauth2`` on 127.0.0.1; every
other deployment must use ``keystone``.

Related options: ``[keystone_authtoken]``, ``[oslo_policy] policy_file``.
"""),
    cfg.HostAddressOpt('host',
                       default='127.0.0.1',
                       help="""
Address the nova-compatible REST API listens on.

Possible values: an IP address or host name of this machine.
Related options: ``port``.
"""),
    cfg.PortOpt('port',
                default=8774,
                help="""
TCP port of the REST API (Nova's is 8774). 0 picks a free port, which the
service logs at start.

Possible values: 0 to 65535.
"""),
    cfg.IntOpt('max_request_body_size',
               default=114688,
               min=1,
               help="""
Largest accepted request body in bytes; larger bodies get ``413``.

Possible values: a positive number of bytes (Nova's default is 114688).
"""),
    cfg.BoolOpt('use_forwarded_for',
                default=False,
                help="""
Take the caller's address from ``X-Forwarded-For`` (Nova's option): only
behind a proxy that sets it. The address is logged with the request.

Related options: ``[oslo_middleware] enable_proxy_headers_parsing``.
"""),
    cfg.IntOpt('max_limit',
               default=1000,
               min=1,
               help="""
Most items a collection request returns in one page (Nova's
``[api] max_limit``).

Possible values: a positive integer.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(api_group)
    conf.register_opts(api_opts, group=api_group)


def list_opts():
    return {api_group.name: api_opts}
