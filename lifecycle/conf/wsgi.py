"""``[wsgi]``: the REST API server embedded in ``lifecycle-api`` and
``lifecycle-aio`` (Nova's group of the same name for its eventlet server).
A deployment behind uwsgi, gunicorn or mod_wsgi serves
``lifecycle.wsgi.api:application`` instead and sets these limits there."""

from oslo_config import cfg

wsgi_group = cfg.OptGroup('wsgi', title='Embedded API server options')

wsgi_opts = [
    cfg.IntOpt('default_pool_size',
               default=64,
               min=1,
               help="""
Most requests the embedded server handles at once (its worker threads).
Connections beyond that wait in the listen backlog instead of each getting a
thread of their own, so a flood of connections cannot exhaust the process.

Possible values: a positive integer.
Related options: ``client_socket_timeout``.
"""),
    cfg.IntOpt('client_socket_timeout',
               default=60,
               min=0,
               help="""
Seconds a client connection may stay silent (while sending its request, or
idle between keep-alive requests) before the server closes it (Nova's option
of this name, default 900 there). Bounds how long a slow or stalled client
holds one of the ``default_pool_size`` threads.

Possible values: 0 (no timeout, not advised) or a number of seconds.
Related options: ``default_pool_size``, ``keep_alive``,
``client_request_timeout``.
"""),
    cfg.IntOpt('client_request_timeout',
               default=60,
               min=0,
               help="""
Seconds a client may take to send one whole request (request line, headers
and body), counted from its first byte; a request not received by then is
answered ``408`` and its connection closed. ``client_socket_timeout`` alone
does not stop a client that sends a byte now and then: such clients could
hold every one of the ``default_pool_size`` threads for ever (slowloris).
Idle keep-alive connections are not counted: they wait without a thread.

Possible values: 0 (no limit, not advised) or a number of seconds.
Related options: ``client_socket_timeout``, ``default_pool_size``.
"""),
    cfg.BoolOpt('keep_alive',
                default=True,
                help="""
Keep HTTP/1.1 connections open between requests. When false every answer
closes its connection.

Related options: ``client_socket_timeout``.
"""),
    cfg.IntOpt('max_request_header_size',
               default=65536,
               min=8192,
               help="""
Largest accepted request line plus headers, in bytes; a larger request gets
``413`` and its connection is closed. Keystone tokens and service tokens
with large catalogs need some room.

Possible values: an integer of at least 8192.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(wsgi_group)
    conf.register_opts(wsgi_opts, group=wsgi_group)


def list_opts():
    return {wsgi_group.name: wsgi_opts}
