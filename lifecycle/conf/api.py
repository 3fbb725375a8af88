from oslo_config import cfg

api_group = cfg.OptGroup('api', title='REST API options')

api_opts = [
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
