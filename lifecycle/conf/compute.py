from oslo_config import cfg

compute_group = cfg.OptGroup('compute', title='Compute host options')

compute_opts = [
    cfg.IntOpt('vcpus',
               default=0,
               min=0,
               help="""
vCPUs this compute host offers before the allocation ratio.

Possible values: 0 (use what the hypervisor reports) or a positive integer.
Related options: ``cpu_allocation_ratio``, ``[aio] host_vcpus``.
"""),
    cfg.IntOpt('memory_mb',
               default=0,
               min=0,
               help="""
Memory in MiB this compute host offers before the allocation ratio.

Possible values: 0 (use what the hypervisor reports) or a positive integer.
Related options: ``ram_allocation_ratio``, ``reserved_host_memory_mb``.
"""),
    cfg.IntOpt('reserved_host_memory_mb',
               default=0,
               min=0,
               help="""
Memory in MiB kept back for the host itself (its operating system, libvirt,
QEMU's overhead): subtracted from ``memory_mb`` before the allocation ratio,
as Nova's option of the same name. Unlike Nova's (512), the default is 0,
because ``memory_mb`` or ``[aio] host_memory_mb`` usually states the memory
offered to guests already; a host that offers what libvirt reports
(``memory_mb = 0``) should set it, as Nova's default does, to 512 or more.

Possible values: 0 or a positive integer, below the host's memory.
Related options: ``memory_mb``, ``ram_allocation_ratio``.
"""),
    cfg.FloatOpt('cpu_allocation_ratio',
                 default=4.0,
                 min=0.0,
                 help="""
Virtual CPUs that may be claimed per physical CPU.

Possible values: a positive float (1.0 means no overcommit).
"""),
    cfg.FloatOpt('ram_allocation_ratio',
                 default=1.0,
                 min=0.0,
                 help="""
Memory that may be claimed per MiB of host memory.

Possible values: a positive float (1.0 means no overcommit).
"""),
    cfg.IntOpt('report_interval',
               default=10,
               min=1,
               help="""
Seconds between a compute host's capacity reports and heartbeats.

Possible values: a positive number of seconds.
Related options: ``service_down_time``.
"""),
    cfg.IntOpt('storage_report_interval',
               default=60,
               min=0,
               help="""
Seconds between a compute host's reports of what it sees of its storage
group's storage (file system size and free space, the allocated bytes of the
storage directory and of each retained disk), sent with the heartbeat. The
conductor's watermark escalation and ``GET /os-storage-groups`` use the
freshest report of a live host of the group when their own host does not
mount the group's storage; a report older than three intervals is not used.
Each report walks the group's storage directory. Set the same value on the
conductor and API hosts, which read it to judge a report's age.

Possible values: 0 (never report: the usage of a group whose storage the
conductor cannot see is unknown and its watermarks are not applied) or a
number of seconds.
Related options: ``report_interval``, ``service_down_time``,
``[shelve] storage_high_watermark``.
"""),
    cfg.IntOpt('reconcile_interval',
               default=60,
               help="""
Seconds between runs of the task that compares this host's libvirt domains
with the database: a domain no instance on this host should have is destroyed
(after ``orphan_domain_grace_period``), an active instance whose domain
vanished is set to error with a fault.

Possible values: a positive number of seconds; 0 or less disables the task.
Related options: ``orphan_domain_grace_period``.
"""),
    cfg.IntOpt('orphan_domain_grace_period',
               default=300,
               min=0,
               help="""
Seconds a domain must stay without an instance that owns it on this host
before reconciliation destroys it, so that an operation that has just
started or finished is never raced.

Possible values: 0 (destroy at the first run that finds it) or a number of
seconds.
Related options: ``reconcile_interval``.
"""),
    cfg.IntOpt('service_down_time',
               default=60,
               min=1,
               help="""
A compute host whose last heartbeat is older than this many seconds is
considered down and is not scheduled to.

Possible values: a positive number of seconds, larger than
``report_interval``.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(compute_group)
    conf.register_opts(compute_opts, group=compute_group)


def list_opts():
    return {compute_group.name: compute_opts}
