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
Memory in MiB kept back for the host itself, as Nova's option.

Possible values: 0 or a positive integer.
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
