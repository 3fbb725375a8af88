from oslo_config import cfg

default_opts = [
    cfg.StrOpt('host',
               sample_default='<current_hostname>',
               help="""
Name of this compute host as known to the database and the message bus.

Possible values: any string unique among the compute hosts of a deployment.
Related options: ``[aio] hosts`` replaces this for in-process compute hosts.
"""),
    cfg.StrOpt('instances_path',
               default='/var/lib/lifecycle/instances',
               help="""
Directory holding this host's instance disks: the storage group's shared
storage as mounted here, laid out as ``<instances_path>/<uuid>/disk`` with base
images in ``<instances_path>/_base/``.

Possible values: an absolute path readable by the hypervisor's QEMU user.
Related options: ``[aio] state_dir`` (all-in-one layout).
"""),
    cfg.IntOpt('shelved_offload_time',
               default=0,
               min=-1,
               help="""
Time in seconds before a shelved instance is offloaded (Nova's meaning).

Possible values:

* 0: offload at once on shelve.
* -1: never offload automatically; the instance stays ``shelved`` with its
  resources claimed until ``shelveOffload``. Values below -1 are refused.
* a positive number: stay ``shelved`` for that long; a periodic task offloads.

Related options:
``shelved_poll_interval`` how often the periodic task looks.
"""),
    cfg.IntOpt('shelved_poll_interval',
               default=3600,
               help="""
Interval in seconds between runs of the periodic task that offloads instances
shelved longer than ``shelved_offload_time``.

Possible values: a positive number of seconds; 0 or less disables the task.
Related options: ``shelved_offload_time``.
"""),
    cfg.IntOpt('shutdown_timeout',
               default=60,
               min=0,
               help="""
Seconds to wait for a guest to power off after an ACPI shutdown request before
it is destroyed (hard power off), as Nova's option of the same name.

Possible values: 0 (power off hard at once) or a positive number of seconds.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(default_opts)


def list_opts():
    return {'DEFAULT': default_opts}
