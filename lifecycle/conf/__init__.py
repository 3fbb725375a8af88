"""Configuration options of shelve-lifecycle, one module per option group.

Options are registered on the global ``CONF`` at import; modules that need a
private ``cfg.ConfigOpts`` (tests) call :func:`register_all` on it.
"""

from keystonemiddleware.auth_token import _opts as authtoken_opts
from oslo_config import cfg
from oslo_db import options as db_options
import oslo_messaging as messaging
from oslo_messaging import opts as messaging_opts
from oslo_policy import opts as policy_opts

from lifecycle.conf import aio
from lifecycle.conf import api
from lifecycle.conf import cinder
from lifecycle.conf import compute
from lifecycle.conf import default
from lifecycle.conf import glance
from lifecycle.conf import image
from lifecycle.conf import libvirt
from lifecycle.conf import notifications
from lifecycle.conf import rbd
from lifecycle.conf import scheduler
from lifecycle.conf import service
from lifecycle.conf import service_user
from lifecycle.conf import shelve
from lifecycle.conf import volume
from lifecycle.conf import wsgi

CONF = cfg.CONF

_MODULES = (default, service, api, wsgi, aio, compute, image, glance,
            cinder, service_user, libvirt, rbd, scheduler, notifications,
            shelve, volume)


def register_all(conf: cfg.ConfigOpts) -> None:
    for module in _MODULES:
        module.register_opts(conf)
    # Library options, listed by their own generator namespaces: [database]
    # from oslo.db; transport_url, timeouts and the tracing options that
    # every RPC call reads from oslo.messaging.
    db_options.set_defaults(conf)
    messaging.set_transport_defaults(control_exchange='lifecycle')
    for group, opts in messaging_opts.list_opts():
        conf.register_opts(opts, group=None if group == 'DEFAULT' else group)
    # The API's: keystonemiddleware's [keystone_authtoken] and
    # oslo.policy's [oslo_policy] (Nova's policy file name). The
    # oslo.middleware groups are registered by the middlewares themselves
    # (lifecycle.api.build_app) and listed by the generator's namespace.
    for group, opts in authtoken_opts.list_opts():
        conf.register_opts(opts, group=group)
    policy_opts.set_defaults(conf, policy_file='policy.yaml')


register_all(CONF)
