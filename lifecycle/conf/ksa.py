"""The keystoneauth1 option wiring shared by the groups that reach another
service (``[glance]``, ``[cinder]``) or authenticate as the service
(``[service_user]``), as Nova's ``nova.conf.utils``.

The options are keystoneauth1's own, registered through
``keystoneauth1.loading`` and read back with its ``load_*_from_conf_options``
functions, so a section written for Nova works here unchanged. The listed
copies are documented as lifecycle/conf/library.py says.
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from lifecycle.conf import library

#: "Possible values" of keystoneauth1's options, which carry no such text;
#: a group overrides the service-specific ones (``service_type``,
#: ``endpoint_override``, ``version``, ...).
KSA_VALUES = {
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
    'service_type': 'a service type of the service-types authority.',
    'service_name': 'the service name in the Keystone catalog; unset '
                    'matches any.',
    'valid_interfaces': 'a list of ``public``, ``internal``, ``admin``, in '
                        'order of preference.',
    'region_name': 'a region of the Keystone catalog; unset matches any.',
    'endpoint_override': 'an http(s) URL of the service; unset looks the '
                         'endpoint up in the Keystone catalog.',
    'version': 'a major API version; unset accepts the discovered one.',
    'min_version': 'a major API version.',
    'max_version': 'a major API version, or ``latest``.',
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


def service_values(service_type: str, endpoint: str,
                   major: str) -> dict[str, str]:
    """The "Possible values" of the options that name one service: its
    ``service_type`` text, an example ``endpoint``, its API ``major``
    version."""
    return {
        'service_type': 'a service type of the service-types authority; '
                        + service_type,
        'endpoint_override': '%s; unset looks the endpoint up in the '
                             'Keystone catalog.' % endpoint,
        'version': 'a major API version such as ``%s``; unset accepts the '
                   'discovered one.' % major,
        'min_version': 'a major API version such as ``%s``.' % major,
        'max_version': 'a major API version such as ``%s``, or '
                       '``latest``.' % major,
    }


def documented(opts: list[cfg.Opt],
               values: dict[str, str] | None = None) -> list[cfg.Opt]:
    """:func:`lifecycle.conf.library.documented` with :data:`KSA_VALUES`
    (``values`` overriding them)."""
    return library.documented(opts, dict(KSA_VALUES, **(values or {})),
                              default='a Keystone name or ID, or unset.')


def register_group(conf: cfg.ConfigOpts, group: cfg.OptGroup) -> None:
    """Register a copy of ``group``: register_group keeps a shallow copy
    that shares the group's option dict, and loading an auth plugin
    registers the plugin's options (e.g. ``endpoint`` of ``none``) into
    it, which would leak them into every other ConfigOpts."""
    conf.register_group(cfg.OptGroup(group.name, title=group.title,
                                     help=group.help))


def register_auth_opts(conf: cfg.ConfigOpts, group: str) -> None:
    """Session and auth options (a service user's credentials)."""
    ks_loading.register_session_conf_options(conf, group)
    ks_loading.register_auth_conf_options(conf, group)


def register_client_opts(conf: cfg.ConfigOpts, group: str,
                         service_type: str) -> None:
    """Session, auth and adapter options of a client of ``service_type``
    (internal endpoints preferred, then public, as Nova's)."""
    register_auth_opts(conf, group)
    ks_loading.register_adapter_conf_options(conf, group,
                                             include_deprecated=False)
    conf.set_default('service_type', service_type, group=group)
    conf.set_default('valid_interfaces', ['internal', 'public'], group=group)


def list_auth_opts(values: dict[str, str] | None = None) -> list[cfg.Opt]:
    """What :func:`register_auth_opts` registers, documented; of the auth
    plugins' own options the sample shows the password plugin's (the
    others are registered only when their plugin is loaded)."""
    return (documented(ks_loading.get_session_conf_options(), values)
            + documented(ks_loading.get_auth_common_conf_options(), values)
            + documented(ks_loading.get_auth_plugin_conf_options('password'),
                         values))


def list_client_opts(service_type: str,
                     values: dict[str, str] | None = None) -> list[cfg.Opt]:
    """What :func:`register_client_opts` registers, documented."""
    adapter = ks_loading.get_adapter_conf_options(include_deprecated=False)
    cfg.set_defaults(adapter, valid_interfaces=['internal', 'public'],
                     service_type=service_type)
    return list_auth_opts(values) + documented(adapter, values)
