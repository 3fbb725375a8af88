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

from oslo_config import cfg

from lifecycle.conf import ksa

DEFAULT_SERVICE_TYPE = 'block-storage'

cinder_group = cfg.OptGroup('cinder',
                            title='Block Storage service (Cinder) options',
                            help="""
How to reach Cinder for volume-backed instances (root disk on a Cinder
volume): the keystoneauth1 session, auth and adapter options as in Nova's
``[cinder]`` section (what compute hosts tell Cinder about themselves, and
how they attach the volumes, is ``[volume]``). Leave ``auth_type`` and
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

# "Possible values" of the keystoneauth1 options that differ for Cinder.
_KSA_VALUES = ksa.service_values(
    '``block-storage`` (aliases ``volumev3``, ``volume``) for Cinder.',
    'an http(s) URL of the Cinder v3 API, e.g. '
    '``http://cinder.example.org:8776/v3`` or, for a noauth Cinder, '
    '``http://127.0.0.1:8776/v3``', '3')


def register_opts(conf: cfg.ConfigOpts) -> None:
    ksa.register_group(conf, cinder_group)
    conf.register_opts(cinder_opts, group=cinder_group.name)
    ksa.register_client_opts(conf, cinder_group.name, DEFAULT_SERVICE_TYPE)


def list_opts():
    return {cinder_group.name: (
        cinder_opts
        + ksa.list_client_opts(DEFAULT_SERVICE_TYPE, _KSA_VALUES))}
