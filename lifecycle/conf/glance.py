"""``[glance]``: how the services reach the Image service, as Nova's group.

The keystoneauth1 session (TLS, timeout), auth (``auth_type`` and the
plugin's options, e.g. ``password``) and adapter (``service_type``,
``valid_interfaces``, ``region_name``, ``endpoint_override``, retries)
options are keystoneauth1's own, registered through ``keystoneauth1.loading``
under this group and read back with its ``load_*_from_conf_options``
functions, so a ``[glance]`` section written for Nova works here unchanged.

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

import copy

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

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

# "Possible values" for keystoneauth1's options, which carry no such text;
# the project's rule (tests/unit/test_config_sample.py) wants it on every
# option it lists. Only the listed copies get it: the registered options
# stay keystoneauth1's own objects.
_KSA_VALUES = {
    # session
    'cafile': 'a path to a PEM file; unset uses the system CA bundle.',
    'certfile': 'a path to a PEM client certificate; unset sends none.',
    'keyfile': 'a path to the PEM key of ``certfile``.',
    'timeout': 'a positive number of seconds; unset waits without limit.',
    'tls_ciphers': 'an OpenSSL cipher string; unset uses OpenSSL defaults.',
    # auth
    'auth_type': 'the name of a keystoneauth1 plugin: ``password``, '
                 '``v3password``, ``v3applicationcredential``, ``token``, '
                 '``none`` (no Keystone; needs ``endpoint_override``), ...',
    'auth_section': 'the name of another section holding the auth options; '
                    'unset reads them from this section.',
    # adapter
    'service_type': 'a service type of the service-types authority; '
                    '``image`` for Glance.',
    'service_name': 'the service name in the Keystone catalog; unset '
                    'matches any.',
    'valid_interfaces': 'a list of ``public``, ``internal``, ``admin``, in '
                        'order of preference.',
    'region_name': 'a region of the Keystone catalog; unset matches any.',
    'endpoint_override': 'an http(s) URL of the Glance API (unversioned, '
                         'e.g. ``http://glance.example.org:9292``); unset '
                         'looks the endpoint up in the Keystone catalog.',
    'version': 'a major API version such as ``2``; unset accepts the '
               'discovered one.',
    'min_version': 'a major API version such as ``2``.',
    'max_version': 'a major API version such as ``2``, or ``latest``.',
    'connect_retries': 'unset (none) or a non-negative integer.',
    'connect_retry_delay': 'unset (exponential back-off) or a non-negative '
                           'number of seconds.',
    'status_code_retries': 'unset (none) or a non-negative integer.',
    'status_code_retry_delay': 'unset (exponential back-off) or a '
                               'non-negative number of seconds.',
    'retriable_status_codes': 'a list of HTTP status codes; unset means '
                              '503.',
    # password plugin
    'auth_url': 'the http(s) URL of the Keystone identity API.',
    'system_scope': '``all`` or unset.',
    'trust_id': 'a Keystone trust ID, or unset.',
    'password': 'the password of ``username``/``user_id``.',
}


def _values_help(opt: cfg.Opt) -> str:
    if isinstance(opt, cfg.BoolOpt) or getattr(opt.type, 'choices', None):
        return ''  # the generator renders choices as "Possible values"
    text = _KSA_VALUES.get(opt.dest)
    if text is None:
        text = 'a Keystone name or ID, or unset.'
    return 'Possible values: ' + text


def _documented(opts: list[cfg.Opt]) -> list[cfg.Opt]:
    """Copies of keystoneauth1's ``opts`` with "Possible values" added."""
    out = []
    for opt in opts:
        opt = copy.deepcopy(opt)
        values = _values_help(opt)
        if values and 'Possible values' not in (opt.help or ''):
            opt.help = '%s\n\n%s' % ((opt.help or '').rstrip(), values)
        out.append(opt)
    return out


def _adapter_opts() -> list[cfg.Opt]:
    opts = ks_loading.get_adapter_conf_options(include_deprecated=False)
    cfg.set_defaults(opts, valid_interfaces=['internal', 'public'],
                     service_type=DEFAULT_SERVICE_TYPE)
    return opts


def register_opts(conf: cfg.ConfigOpts) -> None:
    # A new OptGroup for each ConfigOpts: register_group keeps a shallow copy
    # that shares the group's option dict, and loading an auth plugin
    # registers the plugin's options (e.g. ``endpoint`` of ``none``) into it,
    # which would leak them into every other ConfigOpts.
    conf.register_group(cfg.OptGroup(glance_group.name,
                                     title=glance_group.title,
                                     help=glance_group.help))
    conf.register_opts(glance_opts, group=glance_group)
    ks_loading.register_session_conf_options(conf, glance_group.name)
    ks_loading.register_auth_conf_options(conf, glance_group.name)
    ks_loading.register_adapter_conf_options(conf, glance_group.name,
                                             include_deprecated=False)
    conf.set_default('service_type', DEFAULT_SERVICE_TYPE,
                     group=glance_group.name)
    conf.set_default('valid_interfaces', ['internal', 'public'],
                     group=glance_group.name)


def list_opts():
    # The auth plugin's own options are registered only when the plugin is
    # loaded; the sample shows the common ones and the password plugin's.
    return {glance_group.name: (
        glance_opts
        + _documented(ks_loading.get_session_conf_options())
        + _documented(ks_loading.get_auth_common_conf_options())
        + _documented(ks_loading.get_auth_plugin_conf_options('password'))
        + _documented(_adapter_opts()))}
