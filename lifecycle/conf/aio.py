from oslo_config import cfg

from lifecycle import exception

aio_group = cfg.OptGroup('aio', title='All-in-one service options')

aio_opts = [
    cfg.ListOpt('hosts',
                default=['host-a1:group-a', 'host-a2:group-a',
                         'host-b1:group-b'],
                help="""
Compute hosts that ``lifecycle-aio`` runs in-process, each written as
``HOST:STORAGE_GROUP``. Hosts that name the same storage group share its
instance storage (``<state_dir>/storage/<group>``); one host aggregate with
``storage_group=<group>`` metadata is created for each group at start.

Possible values: a comma-separated list of ``host:group`` pairs with unique
host names; host and group names use letters, digits, ``.``, ``_`` and ``-``.
Related options: ``host_vcpus``, ``host_memory_mb``, ``state_dir``.
"""),
    cfg.IntOpt('host_vcpus',
               default=8,
               min=1,
               help="""
vCPUs each in-process compute host reports (the all-in-one shares one machine,
so capacity is declared, not measured).

Possible values: a positive integer.
Related options: ``hosts``, ``[compute] cpu_allocation_ratio``.
"""),
    cfg.IntOpt('host_memory_mb',
               default=8192,
               min=1,
               help="""
Memory in MiB each in-process compute host reports.

Possible values: a positive integer.
Related options: ``hosts``, ``[compute] ram_allocation_ratio``.
"""),
    cfg.StrOpt('state_dir',
               default='/var/lib/lifecycle',
               help="""
Directory for the all-in-one's state: the SQLite database
(``lifecycle.sqlite``), instance storage of each storage group
(``storage/<group>/``) and the local image directory (``images/``), unless the
options for those say otherwise.

Possible values: an absolute path; the hypervisor's QEMU user must be able to
traverse it.
Related options: ``[database] connection``, ``[image] local_dir``.
"""),
    cfg.IntOpt('executor_thread_pool_size',
               default=8,
               min=1,
               help="""
Worker threads of each in-process RPC server (the conductor and every compute
host): the most requests each works on at once; the rest wait in its queue in
the order they came. Every service of the all-in-one shares one Python
interpreter lock, so threads beyond a few only interleave the same work: in a
burst of 200 unshelves over 20 hosts, 64 threads per server (oslo.messaging's
default) took more CPU per unshelve and finished later than 8. A conductor
thread waits while a compute host works on the request it passed on (an
unshelve, or the upload of a disk a full storage group sends to the image
service), so this is also how many such waits the conductor holds at once.

Possible values: a positive integer.
Related options: ``[DEFAULT] executor_thread_pool_size`` (oslo.messaging's
option; the separate services use it, the all-in-one uses this one).
"""),
]


_NAME_CHARS = frozenset('abcdefghijklmnopqrstuvwxyz'
                        'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-')


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(aio_group)
    conf.register_opts(aio_opts, group=aio_group)


def list_opts():
    return {aio_group.name: aio_opts}


def parse_hosts(entries: list[str]) -> dict[str, str]:
    """``[aio] hosts`` as {host: storage_group}, validated: the group name
    becomes a directory name, so it may not carry path syntax."""
    hosts: dict[str, str] = {}
    for entry in entries:
        host, sep, group = entry.strip().partition(':')
        for name in (host, group):
            if (not sep or not name or name in ('.', '..') or
                    not set(name) <= _NAME_CHARS):
                raise exception.InvalidConfiguration(
                    reason='[aio] hosts entry %r is not HOST:GROUP with '
                           'names of letters, digits, ".", "_", "-"' % entry)
        if host in hosts:
            raise exception.InvalidConfiguration(
                reason='[aio] hosts names %s twice' % host)
        hosts[host] = group
    return hosts
