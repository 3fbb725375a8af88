"""``[rbd]``: storage groups whose instance storage is a Ceph RBD pool.

One deployment may have file-backed groups (qcow2/flat on a shared
``instances_path``) and Ceph-backed ones side by side, and different Ceph
groups may use different clusters, pools or clients. So the Ceph settings
are per storage group: ``[rbd:<group>]`` holds the options of one group,
and any option it leaves unset falls back to ``[rbd]``::

    [rbd]
    storage_groups = ceph-a, ceph-b
    ceph_conf = /etc/ceph/ceph.conf
    user = lifecycle
    secret_uuid = 0a5c2d6e-...

    [rbd:ceph-a]
    pool = vms-a

    [rbd:ceph-b]
    ceph_conf = /etc/ceph/other.conf
    pool = vms-b

A compute service started on its own (``lifecycle-compute``) with
``[libvirt] images_type = rbd`` uses ``[rbd]`` itself, plus the section of
its storage group when it knows the group.
"""

from oslo_config import cfg

rbd_group = cfg.OptGroup('rbd', title='Ceph RBD storage groups')

SECTION_PREFIX = 'rbd:'

_storage_groups_opt = cfg.ListOpt(
    'storage_groups',
    default=[],
    help="""
Storage groups whose instance storage is a Ceph RBD pool. Every host of
such a group uses the ``rbd`` storage backend, whatever ``[libvirt]
images_type`` says; its settings come from the section ``[rbd:<group>]``,
falling back to ``[rbd]`` for options that section does not set.

Possible values: a comma-separated list of storage group names (the
``storage_group`` metadata of their aggregates).
Related options: ``[aio] hosts``, ``[libvirt] images_type``.
""")

# The per-group options; registered under ``[rbd]`` with defaults and under
# each ``[rbd:<group>]`` without (unset there means "as in [rbd]").
_settings_opts = [
    cfg.StrOpt('ceph_conf',
               default='/etc/ceph/ceph.conf',
               help="""
Ceph configuration file of the cluster holding the pool. Its ``mon_host``
gives the monitor addresses written into each domain's ``<source>``
(``<host name=… port=…/>``); the ``rbd`` commands and qemu-img use it
whole. It must be readable by the compute service.

Possible values: an absolute path.
Related options: ``pool``, ``user``.
"""),
    cfg.StrOpt('pool',
               default='vms',
               help="""
RBD pool holding the group's base images (``base_<sha1 of image id>``,
with a protected snapshot ``snap``) and instance root disks
(``<instance uuid>_disk``, clones of a base's snapshot). The pool must
exist and be initialised for RBD (``rbd pool init``).

Possible values: a pool name.
Related options: ``ceph_conf``.
"""),
    cfg.StrOpt('user',
               help="""
Ceph client id (without ``client.``) the compute service and QEMU connect
as. Unset: the Ceph default (``admin``).

Possible values: a client id, e.g. ``lifecycle``; its key must be in a
keyring the Ceph configuration names.
Related options: ``secret_uuid``.
"""),
    cfg.StrOpt('secret_uuid',
               help="""
UUID of the libvirt secret (``virsh secret-define``, usage type ``ceph``)
holding the key of ``user``. Set it when the cluster requires cephx: the
domain's network disk then carries ``<auth username=USER>`` with this
secret. Unset: no ``<auth>`` element (clusters with ``auth_client_required
= none``).

Possible values: a UUID, the same on every host of the group.
Related options: ``user``.
"""),
    cfg.IntOpt('timeout',
               default=120,
               min=1,
               help="""
Seconds one ``rbd`` or ``ceph`` command may take (an import of a base image
included) before it is killed and the operation fails. Also the Ceph client
mount timeout: an unreachable cluster fails fast instead of hanging.

Possible values: a positive number of seconds.
"""),
]

_SETTINGS = tuple(opt.dest for opt in _settings_opts)


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(rbd_group)
    conf.register_opt(_storage_groups_opt, group=rbd_group)
    conf.register_opts(_settings_opts, group=rbd_group)


def list_opts():
    return {rbd_group.name: [_storage_groups_opt] + _settings_opts}


def section(storage_group: str) -> str:
    return SECTION_PREFIX + storage_group


def register_section(conf: cfg.ConfigOpts, storage_group: str) -> str:
    """Register ``[rbd:<storage_group>]`` (once); return its name."""
    name = section(storage_group)
    if name in conf:
        return name
    group = cfg.OptGroup(name, title='Ceph RBD settings of one storage '
                                     'group (unset: as in [rbd])')
    conf.register_group(group)
    # Same names, no defaults: None says "not set for this group".
    conf.register_opts([cfg.StrOpt(o.dest, help=o.help)
                        if not isinstance(o, cfg.IntOpt) else
                        cfg.IntOpt(o.dest, min=1, help=o.help)
                        for o in _settings_opts], group=group)
    return name


def is_rbd_group(conf: cfg.ConfigOpts, storage_group: str | None) -> bool:
    return bool(storage_group) and storage_group in conf.rbd.storage_groups


def settings(conf: cfg.ConfigOpts, storage_group: str | None) -> dict:
    """The Ceph settings of ``storage_group``: ``[rbd:<group>]`` over
    ``[rbd]`` (``[rbd]`` alone when ``storage_group`` is None)."""
    values = {name: conf.rbd[name] for name in _SETTINGS}
    if storage_group:
        name = register_section(conf, storage_group)
        for key in _SETTINGS:
            value = conf[name][key]
            if value is not None:
                values[key] = value
    return values
