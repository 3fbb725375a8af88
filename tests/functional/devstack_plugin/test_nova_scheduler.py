"""The devstack plugin's edit of nova.conf's [filter_scheduler] (the stand-in
of devstack: stand_in.py)."""


import pytest

from tests.functional.devstack_plugin.stand_in import ALL_FILTERS
from tests.functional.devstack_plugin.stand_in import DEVSTACK
from tests.functional.devstack_plugin.stand_in import DEVSTACK_NOVA_CONF
from tests.functional.devstack_plugin.stand_in import DEVSTACK_NOVA_FILTERS
from tests.functional.devstack_plugin.stand_in import FILTER_CLASS
from tests.functional.devstack_plugin.stand_in import NOVA_DEFAULT_FILTERS


class TestNovaSchedulerConfiguration:
    """configure_nova_scheduler_for_lifecycle on several nova.conf files."""

    @pytest.mark.parametrize('nova_conf, available, enabled', [
        # No [filter_scheduler] at all: Nova's defaults are made explicit.
        ('[DEFAULT]\ndebug = True\n',
         [ALL_FILTERS, FILTER_CLASS],
         NOVA_DEFAULT_FILTERS + ',HostAggregateGroupFilter'),
        # The section without the options.
        ('[filter_scheduler]\nhost_subset_size = 2\n',
         [ALL_FILTERS, FILTER_CLASS],
         NOVA_DEFAULT_FILTERS + ',HostAggregateGroupFilter'),
        # Another filter already added, a list written with spaces.
        ('[filter_scheduler]\n'
         'available_filters = nova.scheduler.filters.all_filters\n'
         'available_filters = my.filters.RackFilter\n'
         'enabled_filters = ComputeFilter, RackFilter\n',
         [ALL_FILTERS, 'my.filters.RackFilter', FILTER_CLASS],
         'ComputeFilter,RackFilter,HostAggregateGroupFilter'),
        # Only a custom filter is available: nothing of Nova's is re-added.
        ('[filter_scheduler]\n'
         'available_filters = my.filters.RackFilter\n'
         'enabled_filters = RackFilter\n',
         ['my.filters.RackFilter', FILTER_CLASS],
         'RackFilter,HostAggregateGroupFilter'),
        # Explicitly empty enabled_filters stays without Nova's defaults.
        ('[filter_scheduler]\nenabled_filters =\n',
         [ALL_FILTERS, FILTER_CLASS],
         'HostAggregateGroupFilter'),
        # Already configured by hand: unchanged.
        ('[filter_scheduler]\n'
         'available_filters = nova.scheduler.filters.all_filters\n'
         'available_filters = %s\n'
         'enabled_filters = HostAggregateGroupFilter,ComputeFilter\n'
         % FILTER_CLASS,
         [ALL_FILTERS, FILTER_CLASS],
         'HostAggregateGroupFilter,ComputeFilter'),
    ], ids=['no-section', 'no-options', 'custom-filter-and-spaces',
            'custom-available-only', 'empty-enabled', 'already-done'])
    def test_filters(self, devstack, nova_conf, available, enabled):
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(nova_conf)
        step = ('source "%s/lib/lifecycle"\n'
                'configure_nova_scheduler_for_lifecycle "$NOVA_CONF"'
                % DEVSTACK)
        ds.run(step)
        fs = ds.nova_filter_scheduler()
        assert fs['available_filters'] == available
        assert fs['enabled_filters'] == [enabled]
        with open(ds.nova_conf) as f:
            once = f.read()
        # Idempotent.
        ds.run(step, step)
        with open(ds.nova_conf) as f:
            assert f.read() == once

    def test_nova_reads_the_result(self, devstack):
        """The edited nova.conf, read by oslo.config with Nova's option
        types (MultiStrOpt / ListOpt), gives both filters."""
        from oslo_config import cfg

        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        ds.run('source "%s/lib/lifecycle"\n'
               'configure_nova_scheduler_for_lifecycle "$NOVA_CONF"'
               % DEVSTACK)
        conf = cfg.ConfigOpts()
        conf.register_opts([
            cfg.MultiStrOpt('available_filters', default=[ALL_FILTERS]),
            cfg.ListOpt('enabled_filters',
                        default=NOVA_DEFAULT_FILTERS.split(',')),
        ], group='filter_scheduler')
        conf([], default_config_files=[ds.nova_conf])
        assert conf.filter_scheduler.available_filters == [
            ALL_FILTERS, FILTER_CLASS]
        assert conf.filter_scheduler.enabled_filters == (
            DEVSTACK_NOVA_FILTERS.split(',') + ['HostAggregateGroupFilter'])
