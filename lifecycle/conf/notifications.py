"""Options of the versioned notifications the compute hosts send.

Whether notifications are sent at all, and over which transport, are
oslo.messaging's ``[oslo_messaging_notifications]`` options (``driver``,
``transport_url``), as in Nova: with no ``driver`` (the default) nothing is
sent.
"""

from oslo_config import cfg

notifications_group = cfg.OptGroup(
    'notifications', title='Versioned notification options')

notification_opts = [
    cfg.ListOpt('versioned_notifications_topics',
                default=['versioned_notifications'],
                help="""
Topics the versioned instance notifications (``instance.shelve.start`` …)
are sent to, as Nova's option of the same name: consumers listen on
``<topic>.info`` and ``<topic>.error``.

Notifications are sent only when ``[oslo_messaging_notifications] driver``
is set (``messagingv2`` for a message bus, ``log`` to the service log);
with no driver, the default, nothing is sent.

Possible values: a comma-separated list of topic names.
Related options: ``[oslo_messaging_notifications] driver``,
``[oslo_messaging_notifications] transport_url`` (default: the RPC
``transport_url``).
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(notifications_group)
    conf.register_opts(notification_opts, group=notifications_group)


def list_opts():
    return {notifications_group.name: notification_opts}
