"""The devstack plugin with LIFECYCLE_MODE=nova (the stand-in of devstack:
stand_in.py)."""

import os

from tests.functional.devstack_plugin.stand_in import DEVSTACK_NOVA_CONF
from tests.functional.devstack_plugin.stand_in import DEVSTACK_NOVA_FILTERS
from tests.functional.devstack_plugin.stand_in import FILTER_CLASS
from tests.functional.devstack_plugin.stand_in import NODE
from tests.functional.devstack_plugin.stand_in import REPO
from tests.functional.devstack_plugin.stand_in import read_section


class TestNovaMode:
    """LIFECYCLE_MODE=nova: partial offload inside Nova, no lifecycle-*
    service."""

    def test_stack(self, devstack):
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        nova_cpu_conf = os.path.join(ds.root, 'etc', 'nova', 'nova-cpu.conf')
        partial_conf = os.path.join(ds.root, 'etc', 'nova',
                                    'nova-partial-offload.conf')
        ds.extra_env.update({'LIFECYCLE_MODE': 'nova',
                             'NOVA_CPU_CONF': nova_cpu_conf,
                             'LIFECYCLE_NOVA_CONF': partial_conf,
                             'LIFECYCLE_STORAGE_GROUP': 'group-a'})
        ds.run(('stack', 'install'), ('stack', 'post-config'),
               ('stack', 'extra'))
        assert ds.calls('setup_develop') == [['setup_develop', REPO]]
        assert not os.path.exists(ds.conf)  # no lifecycle.conf
        assert not ds.calls('lifecycle-manage')

        sched = ds.nova_filter_scheduler()
        assert FILTER_CLASS in sched['available_filters']
        assert sched['enabled_filters'] == [
            DEVSTACK_NOVA_FILTERS + ',HostAggregateGroupFilter']
        assert sched['weight_classes'] == [
            'nova.scheduler.weights.all_weighers,'
            'filters.weighers.OriginalHostWeigher']

        assert read_section(partial_conf, 'DEFAULT') == {
            'compute_driver': ['partial_offload.PartialOffloadLibvirtDriver'],
            'shelved_offload_time': ['0']}
        assert read_section(partial_conf, 'partial_offload') == {
            'storage_group': ['group-a']}

        # n-cpu restarted as lifecycle-nova-compute with both files.
        assert ds.calls('stop_process') == [['stop_process', 'n-cpu']]
        [run] = ds.calls('run_process')
        assert run[1] == 'n-cpu'
        assert run[2].split() == [
            os.path.join(ds.bin, 'lifecycle-nova-compute'),
            '--config-file', nova_cpu_conf, '--config-file', partial_conf]
        assert run[3] == 'libvirt'
        assert ds.calls('wait_for_compute') == [['wait_for_compute', '120']]
        assert ds.openstack_state() == {'cloud:devstack-admin': {
            'lifecycle-group-a': {'properties': {'storage_group': 'group-a'},
                                  'hosts': [NODE]}}}

        ds.run(('clean',))
        assert not os.path.exists(partial_conf)
