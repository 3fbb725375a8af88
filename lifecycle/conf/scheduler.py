from oslo_config import cfg

# Nova's group and option names, so operators find them where they expect.
scheduler_group = cfg.OptGroup('filter_scheduler',
                               title='Host selection of the conductor')

scheduler_opts = [
    cfg.FloatOpt('ram_weight_multiplier',
                 default=1.0,
                 help="""
Multiplier of the free-RAM weigher, as Nova's option of the same name.

Possible values:

* a positive number: spread instances over hosts (most free RAM first);
* a negative number: pack them (least free RAM first);
* 0: free RAM does not matter.

Related options: ``shelved_host_weight_multiplier``.
"""),
    cfg.FloatOpt('shelved_host_weight_multiplier',
                 default=1000.0,
                 help="""
Multiplier of the weigher that prefers an unshelving instance's original host
(``shelved_host``); large by default so the original host wins whenever it
fits, and the rest of the storage group is only the fallback.

Possible values: a number; 0 disables the preference.
Related options: ``ram_weight_multiplier``.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(scheduler_group)
    conf.register_opts(scheduler_opts, group=scheduler_group)


def list_opts():
    return {scheduler_group.name: scheduler_opts}
