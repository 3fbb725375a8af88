from oslo_config import cfg

libvirt_group = cfg.OptGroup('libvirt', title='Libvirt driver options')

libvirt_opts = [
    cfg.StrOpt('connection_uri',
               default='qemu:///system',
               help="""
Libvirt connection URI.

Possible values: any libvirt URI, e.g. ``qemu:///system``,
``qemu:///session`` or ``test:///default`` (libvirt's own test driver: domains
exist only in this process; used by the fast test tier and as the all-in-one's
fallback when no libvirtd is reachable).
Related options: ``virt_type``.
"""),
    cfg.StrOpt('virt_type',
               default='auto',
               choices=[('auto', 'kvm when the hypervisor offers it, '
                                 'else qemu'),
                        ('kvm', 'hardware virtualisation'),
                        ('qemu', 'software emulation (TCG)')],
               help="""
Domain type of the guests.

Related options: ``connection_uri``.
"""),
    cfg.StrOpt('images_type',
               default='qcow2',
               help="""
Storage backend of instance root disks, loaded from the
``lifecycle.storage.backends`` entry point namespace.

Possible values:

* qcow2: a qcow2 overlay per instance over a raw base image in ``_base/``.
* flat: a full raw copy of the image per instance.
* rbd: a clone of a protected snapshot of the base image in a Ceph RBD pool
  (settings in ``[rbd]``); the storage groups of ``[rbd] storage_groups``
  use it whatever this option says.

Related options: ``[DEFAULT] instances_path``, ``[rbd] storage_groups``.
"""),
    cfg.BoolOpt('fall_back_to_test_driver',
                default=True,
                help="""
In the all-in-one only: when ``connection_uri`` cannot be opened, use
``test:///default`` instead (logged as a warning) rather than failing.

Related options: ``connection_uri``.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(libvirt_group)
    conf.register_opts(libvirt_opts, group=libvirt_group)


def list_opts():
    return {libvirt_group.name: libvirt_opts}
