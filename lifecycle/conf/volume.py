"""``[volume]``: how a compute host attaches the root volume of a
volume-backed instance (see ``doc/source/volumes.rst``).

Cinder says how a volume is exported in the attachment's
``connection_info``; the compute host describes itself to Cinder with
os-brick's connector properties. ``rbd`` connections become libvirt
network disks (QEMU's own RBD client, nothing on the host); block protocols
(``iscsi``) are connected by os-brick, whose privileged steps run in a
privsep daemon (``[privsep_osbrick]``, see :mod:`lifecycle.privsep`).
"""

from os_brick import opts as os_brick_opts
from oslo_config import cfg
from oslo_privsep import priv_context
from oslo_utils import netutils

from lifecycle.conf import library

# The privsep sections of lifecycle.privsep (oslo.privsep's options,
# registered by the contexts themselves).
PRIVSEP_SECTIONS = ('lifecycle_sys_admin', 'privsep_osbrick')

volume_group = cfg.OptGroup('volume', title='Root volume attachment options',
                            help="""
How compute hosts attach the Cinder volumes volume-backed instances boot
from: what they tell Cinder about themselves (os-brick's connector
properties) and how ``rbd`` and block (``iscsi``) connections are used.
""")

volume_opts = [
    cfg.StrOpt('my_ip',
               default=netutils.get_my_ipv4(),
               sample_default='<host_ipv4>',
               help="""
The IP address the compute host gives Cinder in its connector (os-brick's
``ip``): where block storage back ends export volumes to. Nova's ``[DEFAULT]
my_ip``.

Possible values: an IPv4 or IPv6 address of the host on the storage
network.
Related options: ``use_multipath``.
"""),
    cfg.BoolOpt('use_multipath',
                default=False,
                help="""
Ask for and use multipath block devices (os-brick's ``multipath``; needs
``multipathd``). Nova's ``[libvirt] volume_use_multipath``.

Possible values: true, false.
Related options: ``enforce_multipath``.
"""),
    cfg.BoolOpt('enforce_multipath',
                default=False,
                help="""
With ``use_multipath``: fail the attachment when ``multipathd`` is not
running instead of falling back to a single path. Nova's ``[libvirt]
volume_enforce_multipath``.

Possible values: true, false.
Related options: ``use_multipath``.
"""),
    cfg.IntOpt('device_scan_attempts',
               default=5,
               min=1,
               help="""
How many times os-brick rescans for a block device that does not show up
after login (iSCSI). Nova's ``[libvirt] num_volume_scan_tries``.

Possible values: a positive integer.
"""),
    cfg.StrOpt('rbd_user',
               help="""
Ceph client id QEMU connects as for ``rbd`` volumes, instead of the one
Cinder names (``auth_username``, Cinder's ``rbd_user``). Nova's ``[libvirt]
rbd_user``. Only used when Cinder's connection enables cephx.

Possible values: a Ceph client id without ``client.``; unset takes Cinder's.
Related options: ``rbd_secret_uuid``.
"""),
    cfg.StrOpt('rbd_secret_uuid',
               help="""
UUID of the libvirt secret (usage type ``ceph``) with the key of the Ceph
client of ``rbd`` volumes, instead of the one Cinder names (Cinder's
``rbd_secret_uuid``). Nova's ``[libvirt] rbd_secret_uuid``. Only used when
Cinder's connection enables cephx; the secret must exist on every compute
host (``virsh secret-define``, ``virsh secret-set-value``).

Possible values: a UUID; unset takes Cinder's.
Related options: ``rbd_user``.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(volume_group)
    conf.register_opts(volume_opts, group=volume_group)


# "Possible values" of the libraries' options listed with [volume]
# (oslo.privsep's per-context options, os-brick's [os_brick]), the project's
# rule for every option of the sample.
_LIBRARY_VALUES = {
    'user': 'a local user name; unset keeps the user that started the '
            'daemon (root).',
    'group': 'a local group name; unset keeps the group that started the '
             'daemon.',
    'capabilities': 'a list of Linux capability numbers; unset keeps the '
                    'context\'s own list.',
    'thread_pool_size': 'a positive integer.',
    'helper_command': 'a command line; unset: this installation\'s '
                      '``privsep-helper`` with the service\'s '
                      '``--config-file`` arguments, after ``sudo`` unless '
                      'the service runs as root (see lifecycle/privsep).',
    'logger_name': 'a Python logger name.',
    'lock_path': 'a directory path; unset: ``[oslo_concurrency] '
                 'lock_path``, else ``<instances_path>/locks/os-brick``.',
    'wait_mpath_device_attempts': 'a positive integer.',
    'wait_mpath_device_interval': 'a positive number of seconds.',
}


def list_opts():
    groups = {volume_group.name: volume_opts}
    for section in PRIVSEP_SECTIONS:
        groups[section] = library.documented(priv_context.OPTS,
                                             _LIBRARY_VALUES)
    for group, opts in os_brick_opts.list_opts():
        groups[group] = library.documented(opts, _LIBRARY_VALUES)
    return groups
