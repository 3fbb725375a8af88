from oslo_config import cfg

shelve_group = cfg.OptGroup('shelve', title='Shelve and offload options')

shelve_opts = [
    cfg.StrOpt('offload_mode',
               default='partial',
               choices=[('partial', 'keep the root disk on the storage '
                                    "group's storage; free CPU and RAM"),
                        ('full', 'upload the root disk to the image service, '
                                 'verify it, then free the disk (stock '
                                 'Nova)')],
               help="""
What offloading a shelved image-booted instance does.

Related options: ``[DEFAULT] shelved_offload_time`` (when offload happens),
``retained_disk_max_age``, ``storage_high_watermark`` and
``unshelve_fallback`` (when a partial offload is escalated to a full one).
"""),
    cfg.IntOpt('retained_disk_max_age',
               default=0,
               min=0,
               help="""
Seconds a partially offloaded instance may keep its retained disk before a
periodic task escalates it to a full offload.

Possible values: 0 (never escalate by age) or a number of seconds.
Related options: ``escalation_interval``.
"""),
    cfg.IntOpt('storage_high_watermark',
               default=0,
               min=0,
               max=100,
               help="""
Percentage of a storage group's capacity above which the periodic task fully
offloads the oldest retained disks of that group, until usage is below
``storage_low_watermark``.

Possible values: 0 (off) or 1 to 100.
Related options: ``storage_low_watermark``, ``escalation_interval``;
capacity comes from the aggregate's ``storage_capacity_gb`` metadata or the
file system of the group's storage.
"""),
    cfg.IntOpt('storage_low_watermark',
               default=70,
               min=0,
               max=100,
               help="""
Percentage of a storage group's capacity the watermark escalation brings
usage back under.

Possible values: 0 to 100, below ``storage_high_watermark``.
Related options: ``storage_high_watermark``.
"""),
    cfg.StrOpt('unshelve_fallback',
               default='fail',
               choices=[('fail', 'the unshelve ends with a recorded fault '
                                 'and the instance keeps its retained disk'),
                        ('transfer', 'fully offload the retained disk and '
                                     'place the instance on any host')],
               help="""
What an unshelve does when no host of the instance's storage group fits.

Related options: ``offload_mode``.
"""),
    cfg.IntOpt('transfer_timeout',
               default=3600,
               min=1,
               help="""
Longest time in seconds the conductor waits for a compute host to move a
disk: the upload of a retained disk when ``unshelve_fallback = transfer``
moves an instance out of its full storage group, and an unshelve a host has
accepted (``spawning``; from an image after a full offload, a download). The
conductor follows the work in the database after ``rpc_response_timeout``,
and stops waiting earlier when the host stops reporting; the host finishes
or reverts the work itself.

Possible values: a positive number of seconds, enough to move the largest
root disk to or from the image service.
Related options: ``unshelve_fallback``, ``[DEFAULT] rpc_response_timeout``.
"""),
    cfg.BoolOpt('keep_memory',
                default=False,
                help="""
Whether a shelve keeps the guest's memory (hibernate-shelve) when neither
the request (``{"shelve": {"lifecycle:keep_memory": ...}}``) nor the
server's image (property ``lifecycle_keep_memory``) says. The memory is
saved with libvirt's save next to the retained disk on the storage group's
storage, and an unshelve on any host of the group resumes the guest from it
instead of booting it. Costs a file about the size of the guest's RAM
(less when libvirt's ``save_image_format`` in qemu.conf compresses it) in
the group's storage while shelved.

Possible values: true, false. Servers with a root volume, and storage
groups on Ceph RBD, are always shelved without their memory.
Related options: ``offload_mode`` (a full offload discards the memory
state), ``[DEFAULT] shelved_offload_time``.
"""),
    cfg.IntOpt('escalation_interval',
               default=600,
               help="""
Seconds between runs of the conductor's periodic task that applies
``retained_disk_max_age`` and the storage watermarks.

Possible values: a positive number of seconds; 0 or less disables the task.
Related options: ``retained_disk_max_age``, ``storage_high_watermark``.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(shelve_group)
    conf.register_opts(shelve_opts, group=shelve_group)


def list_opts():
    return {shelve_group.name: shelve_opts}
