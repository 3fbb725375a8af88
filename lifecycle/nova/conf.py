"""``[partial_offload]`` options of nova.conf (the Nova plugin).

Registered on Nova's own ``nova.conf.CONF`` by :func:`register_opts`
(the driver does it on import); listed for ``oslo-config-generator`` by
:func:`list_opts` (namespace ``lifecycle.nova``).
"""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'partial_offload',
    title='Partial offload (shelve-lifecycle Nova plugin)',
    help='Options of the PartialOffloadLibvirtDriver compute driver '
         '(compute_driver = partial_offload.PartialOffloadLibvirtDriver).')

OPTS = [
    cfg.StrOpt(
        'storage_group',
        help='Name of the storage group this compute host belongs to: the '
             'value of the storage_group metadata of the host aggregate '
             'whose hosts share this host\'s instance storage '
             '([DEFAULT] instances_path, or the [libvirt] images_rbd_pool). '
             'When set, shelve keeps the root disk on that storage instead '
             'of uploading it, and unshelve on any host of the group runs '
             'the same disk. '
             'Possible values: unset (stock Nova shelve: full snapshot to '
             'Glance), or the group name. '
             'Related options: [libvirt] images_type (qcow2, flat/raw or '
             'rbd), [DEFAULT] instances_path, [filter_scheduler] '
             'enabled_filters (HostAggregateGroupFilter).'),
    cfg.IntOpt(
        'retained_disk_max_age',
        default=0, min=0,
        help='Seconds a retained disk may stay before the periodic pass '
             'escalates it to a full offload (upload to Glance, verify, '
             'record shelved_image_id, then remove the disk). '
             'Possible values: 0 (never by age), or a positive number of '
             'seconds. Related options: storage_high_watermark, '
             '[image_cache] manager_interval (the pass\'s period).'),
    cfg.IntOpt(
        'storage_high_watermark',
        default=0, min=0, max=100,
        help='Usage of the group\'s instance storage (percent) above '
             'which the periodic pass escalates retained disks, oldest '
             'first, until usage is below storage_low_watermark. File '
             'disks: the file system holding instances_path (statvfs). '
             'RBD: the pool [libvirt] images_rbd_pool -- against its quota '
             '(ceph osd pool set-quota max_bytes) the bytes its images '
             'allocate, or without a quota Nova\'s own "ceph df" figures '
             '(bytes_used of bytes_used + max_avail). '
             'Possible values: 0 (off), 1-100. '
             'Related options: storage_low_watermark, '
             'retained_disk_max_age.'),
    cfg.IntOpt(
        'storage_low_watermark',
        default=0, min=0, max=100,
        help='Usage (percent) down to which escalation by watermark goes. '
             'Possible values: 0 (use storage_high_watermark), 1-100, no '
             'higher than storage_high_watermark. '
             'Related options: storage_high_watermark.'),
    cfg.BoolOpt(
        'cleanup_deleted',
        default=True,
        help='Remove, in the periodic pass, the retained disks of servers '
             'deleted while SHELVED_OFFLOADED (Nova deletes those without '
             'calling any compute host). A disk is removed only when its '
             'instance is deleted in, or absent from, the cell database. '
             'Possible values: true, false (leave it to '
             '"lifecycle-manage nova disks cleanup"). '
             'Related options: [image_cache] manager_interval.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
