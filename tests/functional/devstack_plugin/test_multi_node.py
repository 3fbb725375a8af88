"""The devstack plugin on the nodes of a multi-node devstack (the stand-in of
devstack: stand_in.py)."""

import os

from tests.functional.devstack_plugin.stand_in import ADMIN_TOKEN
from tests.functional.devstack_plugin.stand_in import DEVSTACK_NOVA_CONF
from tests.functional.devstack_plugin.stand_in import NODE
from tests.functional.devstack_plugin.stand_in import check_openstack_calls
from tests.functional.devstack_plugin.stand_in import load_lifecycle_conf
from tests.functional.devstack_plugin.stand_in import run_process_calls


class TestMultiNode:
    def test_compute_subnode(self, devstack):
        """A subnode: n-cpu and lifecycle-compute only (local.conf disables
        the API and conductor); the controller has the DB and n-sch."""
        ds = devstack
        ds.enabled = ['n-cpu', 'placement-client']
        ds.disabled = ['lifecycle-api', 'lifecycle-conductor']
        ds.extra_env['SERVICE_HOST'] = '192.0.2.1'
        ds.run(('stack', 'install'), ('stack', 'post-config'),
               ('stack', 'extra'))
        assert os.path.exists(ds.conf)
        assert not os.path.exists(ds.nova_conf)
        assert not ds.calls('recreate_database')
        assert not ds.calls('lifecycle-manage')
        assert list(run_process_calls(ds)) == ['lifecycle-compute']
        assert ds.openstack_state() == {
            'cloud:devstack-admin': {'lifecycle-default': {
                'properties': {'storage_group': 'default'},
                'hosts': [NODE]}},
            'endpoint:http://192.0.2.1:8784/v2.1': {'lifecycle-default': {
                'properties': {'storage_group': 'default'},
                'hosts': [NODE]}},
        }

    def test_compute_subnode_of_a_keystone_controller(self, devstack):
        """LIFECYCLE_AUTH_STRATEGY=keystone on a subnode without Keystone:
        it adds itself to the lifecycle storage group with an admin token,
        creates no account and writes no uwsgi configuration."""
        ds = devstack
        ds.enabled = ['n-cpu', 'placement-client']
        ds.disabled = ['lifecycle-api', 'lifecycle-conductor']
        ds.extra_env.update({'SERVICE_HOST': '192.0.2.1',
                             'LIFECYCLE_AUTH_STRATEGY': 'keystone'})
        ds.run(('stack', 'install'), ('stack', 'post-config'),
               ('stack', 'extra'))
        assert load_lifecycle_conf(ds.conf).api.auth_strategy == 'keystone'
        assert not ds.calls('create_service_user')
        assert not ds.calls('write_uwsgi_config')
        api_url = 'http://192.0.2.1:8784/v2.1'
        check_openstack_calls(ds, ['--os-auth-type', 'admin_token',
                                    '--os-endpoint', api_url], ADMIN_TOKEN)
        assert ds.openstack_state()['endpoint:' + api_url][
            'lifecycle-default']['hosts'] == [NODE]

    def test_second_host_joins_existing_group(self, devstack):
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        ds.run(('stack', 'extra'))
        ds.extra_env['LIFECYCLE_HOST'] = 'devstack-node2'
        ds.run(('stack', 'extra'))
        for aggregates in ds.openstack_state().values():
            assert aggregates['lifecycle-default']['hosts'] == [
                NODE, 'devstack-node2']

    def test_plugin_does_nothing_when_its_services_are_disabled(
            self, devstack):
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        ds.disabled = ['lifecycle-api', 'lifecycle-conductor',
                       'lifecycle-compute']
        ds.run(('stack', 'install'), ('stack', 'post-config'),
               ('stack', 'extra'), ('unstack',), ('clean',))
        names = {c[0] for c in ds.calls()}
        assert names == {'define_plugin'}
        with open(ds.nova_conf) as f:
            assert f.read() == DEVSTACK_NOVA_CONF
