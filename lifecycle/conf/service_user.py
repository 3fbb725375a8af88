"""``[service_user]``: the service's own credentials sent as a service
token next to the user's token (Nova's group of this name).

The API calls Glance and Cinder as the user who made the request (the
user's token); with ``send_service_user_token`` the call also carries an
``X-Service-Token`` of this user, so that Glance and Cinder accept a user
token that expires during a long operation (a full-offload upload) and know
the call comes from a service. The auth options are keystoneauth1's own, as
in ``[glance]``::

    [service_user]
    send_service_user_token = true
    auth_type = password
    auth_url = https://keystone.example.org/v3
    username = lifecycle
    password = ...
    user_domain_name = Default
    project_name = service
    project_domain_name = Default
"""

from oslo_config import cfg

from lifecycle.conf import ksa

service_user_group = cfg.OptGroup('service_user', title='Service token',
                                  help="""
The service user whose token accompanies the user's token on calls to
Glance and Cinder (Nova's ``[service_user]``).
""")

service_user_opts = [
    cfg.BoolOpt('send_service_user_token',
                default=False,
                help="""
Send a service token (of the user configured in this section) with the
user's token on calls to Glance and Cinder made for a request. Glance and
Cinder then accept the user's token even when it expired during the
operation, if their ``[keystone_authtoken] service_token_roles`` match.

Related options: the auth options of this section.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    ksa.register_group(conf, service_user_group)
    conf.register_opts(service_user_opts, group=service_user_group.name)
    ksa.register_auth_opts(conf, service_user_group.name)


def list_opts():
    return {service_user_group.name: (
        service_user_opts + ksa.list_auth_opts())}
