"""``[cinder]``: how the services reach the Block Storage service, as Nova's
group.

As in ``[glance]``, the keystoneauth1 session (TLS, timeout), auth
(``auth_type`` and the plugin's options) and adapter (``service_type``,
``valid_interfaces``, ``region_name``, ``endpoint_override``, retries)
options are keystoneauth1's own, registered under this group and read back
with its ``load_*_from_conf_options`` functions.

Keystone (production)::

    [cinder]
    auth_type = password
    auth_url = https://keystone.example.org/v3
    username = lifecycle
    password = ...
    user_domain_name = Default
    project_name = service
    project_domain_name = Default
    valid_interfaces = internal

A Cinder without Keystone (``[DEFAULT] auth_strategy = noauth``; the test
harness). keystoneauth1's ``none`` plugin sends the token ``notused``, which
Cinder's noauth middleware reads as user and project ``notused``; that name
does not match Cinder's default ``project_id_regex`` (``[0-9a-f-]+``), so
give the endpoint without a project (Cinder routes ``/v3/...`` without a
project id, the form of microversion 3.67, at every microversion)::

    [cinder]
    auth_type = none
    endpoint_override = http://127.0.0.1:8776/v3

To have the URLs carry a project id (``http://127.0.0.1:8776/v3/<project>``)
use python-cinderclient's own ``noauth`` plugin, which sends the token
``<user>:<project>``::

    [cinder]
    auth_type = noauth
    user_id = lifecycle
    project_id = 0123456789abcdef0123456789abcdef
    endpoint = http://127.0.0.1:8776/v3
"""

import copy

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from lifecycle.conf import glance as glance_conf

DEFAULT_SERVICE_TYPE = 'block-storage'

cinder_group = cfg.OptGroup('cinder',
                            title='Block Storage service (Cinder) options',
                            help="""
How to reach Cinder for volume-backed instances (root disk on a Cinder
volume): the keystoneauth1 session, auth and adapter options as in Nova's
``[cinder]`` section, and what this service's compute hosts tell Cinder
about themselves (their connector). Leave ``auth_type`` and
``endpoint_override`` unset to run without Cinder: a server create that asks
for a volume is then refused.
""")

cinder_opts = [
    cfg.IntOpt('http_retries',
               default=3,
               min=0,
               help="""
How many times a request to Cinder that failed on the connection (refused,
reset, timed out) or with a 5xx status is tried again, after 1, 2, 4, ...
seconds, for the requests that are safe to repeat (show, and the attachment
update and complete, which Cinder makes idempotent). Creating an attachment
is never repeated by this client: a lost answer would leave an attachment
nobody records.

Possible values: 0 (no retry) or a positive integer.
"""),
    cfg.StrOpt('connector_ip',
               default='127.0.0.1',
               help="""
The IP address a compute host gives Cinder in its connector (os-brick's
``ip``), where the storage back end exports volumes to. Nova takes it from
``[DEFAULT] my_ip``.

Possible values: an IPv4 or IPv6 address of the compute host on the storage
network.
"""),
    cfg.StrOpt('iscsi_initiator_prefix',
               default='iqn.2010-10.org.openstack',
               help="""
The compute host's iSCSI initiator name in its connector is this prefix,
``:`` and the host name (os-brick reads the real one from
``/etc/iscsi/initiatorname.iscsi``; this service does not attach block
devices itself).

Possible values: an iSCSI qualified name prefix
(``iqn.YYYY-MM.reverse.domain``).
"""),
    cfg.IntOpt('volume_status_timeout',
               default=60,
               min=1,
               help="""
Seconds to wait for a volume to leave a transient status (``detaching``,
``attaching``, ``reserved`` after its last attachment went) before deleting
it, when an instance deleted with ``delete_on_termination`` removes its root
volume.

Possible values: a positive number of seconds.
"""),
]

# "Possible values" for keystoneauth1's options (the project's rule, see
# lifecycle/conf/glance.py): Glance's texts, with the Cinder-specific ones.
_KSA_VALUES = dict(
    glance_conf._KSA_VALUES,
    service_type='a service type of the service-types authority; '
                 '``block-storage`` (aliases ``volumev3``, ``volume``) for '
                 'Cinder.',
    endpoint_override='an http(s) URL of the Cinder v3 API, e.g. '
                      '``http://cinder.example.org:8776/v3`` or, for a '
                      'noauth Cinder, ``http://127.0.0.1:8776/v3``; unset '
                      'looks the endpoint up in the Keystone catalog.',
    version='a major API version such as ``3``; unset accepts the '
            'discovered one.',
    min_version='a major API version such as ``3``.',
    max_version='a major API version such as ``3``, or ``latest``.')


def _documented(opts: list[cfg.Opt]) -> list[cfg.Opt]:
    """Copies of keystoneauth1's ``opts`` with "Possible values" added."""
    out = []
    for opt in opts:
        opt = copy.deepcopy(opt)
        if not (isinstance(opt, cfg.BoolOpt) or
                getattr(opt.type, 'choices', None)):
            text = _KSA_VALUES.get(opt.dest,
                                   'a Keystone name or ID, or unset.')
            if 'Possible values' not in (opt.help or ''):
                opt.help = '%s\n\nPossible values: %s' % (
                    (opt.help or '').rstrip(), text)
        out.append(opt)
    return out


def _adapter_opts() -> list[cfg.Opt]:
    opts = ks_loading.get_adapter_conf_options(include_deprecated=False)
    cfg.set_defaults(opts, valid_interfaces=['internal', 'public'],
                     service_type=DEFAULT_SERVICE_TYPE)
    return opts


def register_opts(conf: cfg.ConfigOpts) -> None:
    # A new OptGroup per ConfigOpts, for the reason given in
    # lifecycle/conf/glance.py (auth plugins register their options into
    # the group when loaded).
    conf.register_group(cfg.OptGroup(cinder_group.name,
                                     title=cinder_group.title,
                                     help=cinder_group.help))
    conf.register_opts(cinder_opts, group=cinder_group.name)
    ks_loading.register_session_conf_options(conf, cinder_group.name)
    ks_loading.register_auth_conf_options(conf, cinder_group.name)
    ks_loading.register_adapter_conf_options(conf, cinder_group.name,
                                             include_deprecated=False)
    conf.set_default('service_type', DEFAULT_SERVICE_TYPE,
                     group=cinder_group.name)
    conf.set_default('valid_interfaces', ['internal', 'public'],
                     group=cinder_group.name)


def list_opts():
    return {cinder_group.name: (
        cinder_opts
        + _documented(ks_loading.get_session_conf_options())
        + _documented(ks_loading.get_auth_common_conf_options())
        + _documented(ks_loading.get_auth_plugin_conf_options('password'))
        + _documented(_adapter_opts()))}
