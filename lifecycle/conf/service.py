"""Options of the separate services (``lifecycle-api``,
``lifecycle-conductor``, ``lifecycle-compute``) and of how they meet on the
message bus."""

from oslo_config import cfg

service_opts = [
    cfg.StrOpt('rpc_topic_prefix',
               default='',
               regex=r'^[A-Za-z0-9._-]*$',
               help="""
Prefix of the RPC topics the services listen on and send to:
``<prefix>lifecycle-conductor`` and ``<prefix>lifecycle-compute.<host>``.

RabbitMQ names its queues after the topic alone (``control_exchange`` only
names the exchange they are bound to), so two deployments that share one
RabbitMQ virtual host must differ in this prefix; giving each deployment its
own virtual host in ``transport_url`` is the usual way and needs no prefix.
Every service of one deployment must use the same prefix.

Possible values: empty (no prefix) or letters, digits, ``.``, ``_``, ``-``.
Related options: ``transport_url``, ``control_exchange``.
"""),
    cfg.BoolOpt('allow_sqlite',
                default=False,
                help="""
Let ``lifecycle-api``, ``lifecycle-conductor`` and ``lifecycle-compute`` run
on a SQLite ``[database] connection``. SQLite serialises every writer on a
file lock and works only for processes on one machine, so the separate
services refuse it unless this is set (they still log a warning). The
all-in-one (one process) uses SQLite by default and ignores this option.

Possible values: true or false.
Related options: ``[database] connection``.
"""),
    cfg.IntOpt('rpc_send_retries',
               default=10,
               min=-1,
               help="""
How many times a service tries again to send an RPC message while the message
bus is unreachable (oslo.messaging's ``retry``; the waits between tries grow
as ``[oslo_messaging_rabbit] rabbit_retry_interval``/``rabbit_retry_backoff``
say). After the last one the request fails: the API answers 503 and the
instance's task is ended by the stuck-task check. Replies are bounded
separately by ``rpc_response_timeout``.

Possible values: -1 (retry forever: requests wait as long as the bus is
away), 0 (no retry) or a number of retries.
Related options: ``rpc_response_timeout``, ``stuck_task_timeout``.
"""),
    cfg.IntOpt('stuck_task_timeout',
               default=1800,
               min=0,
               help="""
Seconds after which the conductor ends a task nobody is working on: an
instance with a task_state, unchanged for this long, and no unfinished
flow record of any service (a request lost with the message bus, or sent to
a host that never got it). The instance gets a fault and, depending on the
task, goes back to where it was (``unshelving`` gives back its claim and
stays offloaded; ``scheduling``/``spawning`` ends in ERROR like a failed
build). An operation a killed service had started keeps its flow record
and is finished by that service when it starts again, never here.

Possible values: 0 (never) or a number of seconds, well above the longest
operation's time in a message queue.
Related options: ``stuck_task_interval``, ``rpc_response_timeout``.
"""),
    cfg.IntOpt('request_resend_timeout',
               default=60,
               min=1,
               help="""
Seconds after which the conductor sends an accepted request again when no
service has started it: the API records each request it answers 202 (and
every service each hand-over) with the task_state it sets, and a message
lost with a killed process or a restarted message bus would otherwise leave
the instance in its task until ``stuck_task_timeout``. A request whose
compute host is down (no heartbeat for ``[compute] service_down_time``)
cannot be carried out: its task is ended at once with a fault. A request
sent twice is harmless (the second finds its task moved on and is dropped),
so this only needs to be above the usual time a request waits in a queue.
A service that starts sends its own accepted requests again at once.

Possible values: a number of seconds.
Related options: ``request_resend_interval``, ``stuck_task_timeout``.
"""),
    cfg.IntOpt('request_resend_interval',
               default=15,
               min=0,
               help="""
Seconds between the conductor's checks for accepted requests nobody
started (see ``request_resend_timeout``).

Possible values: 0 (off: only a starting service sends its own again) or a
number of seconds.
Related options: ``request_resend_timeout``.
"""),
    cfg.IntOpt('stuck_task_interval',
               default=60,
               min=0,
               help="""
Seconds between the conductor's checks for stuck tasks.

Possible values: 0 (off) or a number of seconds.
Related options: ``stuck_task_timeout``.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(service_opts)


def list_opts():
    return {'DEFAULT': service_opts}
