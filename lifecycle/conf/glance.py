"""``[glance]``: how the services reach the Image service, as Nova's group.

The keystoneauth1 session (TLS, timeout), auth (``auth_type`` and the
plugin's options, e.g. ``password``) and adapter (``service_type``,
``valid_interfaces``, ``region_name``, ``endpoint_override``, retries)
options are keystoneauth1's own (lifecycle/conf/ksa.py), so a ``[glance]``
section written for Nova works here unchanged.

Keystone (production)::

    [glance]
    auth_type = password
    auth_url = https://keystone.example.org/v3
    username = lifecycle
    password = ...
    user_domain_name = Default
    project_name = service
    project_domain_name = Default
    valid_interfaces = internal

A Glance without Keystone (``[paste_deploy] flavor`` without ``keystone``;
the test harness)::

    [glance]
    auth_type = none
    endpoint_override = http://127.0.0.1:9292
"""

from oslo_config import cfg

from lifecycle.conf import ksa

DEFAULT_SERVICE_TYPE = 'image'

glance_group = cfg.OptGroup('glance', title='Image service (Glance) options',
                            help="""
How to reach Glance when ``[image] source = glance``: the keystoneauth1
session, auth and adapter options as in Nova's ``[glance]`` section, and
this service's transfer options.
""")

glance_opts = [
    cfg.IntOpt('num_retries',
               default=3,
               min=0,
               help="""
How many times a request to Glance that failed on the connection
(refused, reset, timed out) or with a 5xx status is tried again, after 1,
2, 4, ... seconds (at most 30). It applies to requests that are safe to
repeat: list, show, download (the whole download is restarted into a new
temporary file) and delete. An upload is never repeated by this client:
its data stream cannot be replayed; the operation that uploads (full
offload) is retried as a whole.

Possible values: 0 (no retry) or a positive integer.
Related options: ``connect_retries`` (keystoneauth1's retries of the
connection only, for every request including uploads: leave it unset).
"""),
    cfg.IntOpt('transfer_log_interval',
               default=10,
               min=1,
               help="""
Seconds between two progress lines (bytes done, percentage, rate in MiB/s)
logged at INFO level while image data is downloaded from or uploaded to
Glance. A line is also logged when a transfer starts and when it ends.

Possible values: a positive number of seconds.
"""),
]

# "Possible values" of the keystoneauth1 options that differ for Glance.
_KSA_VALUES = ksa.service_values(
    '``image`` for Glance.',
    'an http(s) URL of the Glance API (unversioned, e.g. '
    '``http://glance.example.org:9292``)', '2')


def register_opts(conf: cfg.ConfigOpts) -> None:
    ksa.register_group(conf, glance_group)
    conf.register_opts(glance_opts, group=glance_group.name)
    ksa.register_client_opts(conf, glance_group.name, DEFAULT_SERVICE_TYPE)


def list_opts():
    return {glance_group.name: (
        glance_opts
        + ksa.list_client_opts(DEFAULT_SERVICE_TYPE, _KSA_VALUES))}
