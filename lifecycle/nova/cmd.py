"""``lifecycle-nova-compute``: Nova's own nova-compute with the
partial-offload driver loadable (and the default ``compute_driver``)."""

import sys


def main() -> None:
    import lifecycle.nova  # noqa: F401 - registers nova.virt.partial_offload
    from nova.cmd import compute
    from nova import conf as nova_conf

    from lifecycle.nova import conf

    conf.register_opts(nova_conf.CONF)
    nova_conf.CONF.set_default(
        'compute_driver', 'partial_offload.PartialOffloadLibvirtDriver')
    sys.exit(compute.main())


if __name__ == '__main__':
    main()
