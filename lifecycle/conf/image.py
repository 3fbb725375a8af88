from oslo_config import cfg

image_group = cfg.OptGroup('image', title='Image source options')

image_opts = [
    cfg.StrOpt('source',
               default='local',
               choices=[
                   ('local', 'image files in ``local_dir`` (the '
                             'all-in-one\'s embedded default, no Glance)'),
                   ('glance', 'the Glance image service reached through the '
                              '``[glance]`` options; full offload uploads '
                              'its images there'),
               ],
               help="""
Where images come from: the base images instances boot from, the images
the REST API lists, and (with ``glance``) where fully offloaded disks go.

Related options: ``local_dir``, the ``[glance]`` section.
"""),
    cfg.StrOpt('local_dir',
               help="""
Directory of the local image source: each image is a file ``<id>`` beside its
metadata ``<id>.json``.

Every process that reads images (``lifecycle-api`` lists and checks them,
``lifecycle-compute`` downloads them into its storage group's ``_base/``) must
see the same directory, e.g. on NFS, when the services run on several hosts.

Possible values: an absolute path. Unset means ``<[aio] state_dir>/images`` in
the all-in-one; with ``source = local``, ``lifecycle-api`` and
``lifecycle-compute`` refuse to start without it.
Related options: ``source``, ``[aio] state_dir``.
"""),
    cfg.StrOpt('default_image_name',
               default='lifecycle-blank',
               help="""
Name of the image the all-in-one registers at start when no image of that name
exists: a small qcow2 with a recognisable header and no operating system,
enough for lifecycle tests.

Possible values: any image name.
"""),
    cfg.IntOpt('default_image_size_mb',
               default=1024,
               min=1,
               help="""
Virtual size in MiB of the default image (it is sparse; only its header is
written).

Possible values: a positive integer.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(image_group)
    conf.register_opts(image_opts, group=image_group)


def list_opts():
    return {image_group.name: image_opts}
