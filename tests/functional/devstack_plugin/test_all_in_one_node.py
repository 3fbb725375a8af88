"""The devstack plugin on one node running Nova and every lifecycle service
(the stand-in of devstack: stand_in.py)."""

import os
import sqlite3

from tests.functional.devstack_plugin.stand_in import ADMIN_TOKEN
from tests.functional.devstack_plugin.stand_in import ALL_FILTERS
from tests.functional.devstack_plugin.stand_in import API_URL
from tests.functional.devstack_plugin.stand_in import DEVSTACK_NOVA_CONF
from tests.functional.devstack_plugin.stand_in import DEVSTACK_NOVA_FILTERS
from tests.functional.devstack_plugin.stand_in import FILTER_CLASS
from tests.functional.devstack_plugin.stand_in import NODE
from tests.functional.devstack_plugin.stand_in import REPO
from tests.functional.devstack_plugin.stand_in import SERVICE_HOST
from tests.functional.devstack_plugin.stand_in import check_keystone_conf
from tests.functional.devstack_plugin.stand_in import check_openstack_calls
from tests.functional.devstack_plugin.stand_in import check_uwsgi_conf
from tests.functional.devstack_plugin.stand_in import load_lifecycle_conf
from tests.functional.devstack_plugin.stand_in import read_section
from tests.functional.devstack_plugin.stand_in import run_process_calls


class TestAllInOneNode:
    """One node running Nova and every lifecycle service."""

    def test_stack(self, devstack):
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        ds.run(('stack', 'install'), ('stack', 'post-config'),
               ('stack', 'extra'))

        assert ds.calls('define_plugin') == [
            ['define_plugin', 'shelve-lifecycle']]
        assert ds.calls('setup_develop') == [['setup_develop', REPO]]

        # lifecycle.conf: the generator's sample plus devstack's values.
        with open(ds.conf) as f:
            text = f.read()
        assert '#shelved_offload_time = 0' in text
        assert ds.calls('oslo-config-generator') == [[
            'oslo-config-generator', '--config-file',
            os.path.join(REPO, 'etc/lifecycle/'
                               'lifecycle-config-generator.conf'),
            '--output-file', ds.conf]]
        conf = load_lifecycle_conf(ds.conf)
        assert conf.transport_url == \
            'rabbit://stackrabbit:secret@%s:5672/' % SERVICE_HOST
        assert conf.host == NODE
        # Its own instances directory, not Nova's (the layout trap).
        assert conf.instances_path == os.path.join(ds.state, 'instances')
        assert conf.instances_path != ds.instances
        assert conf.database.connection == 'sqlite:///' + ds.db_file
        assert conf.api.host == '0.0.0.0'
        assert conf.api.port == 8784
        assert conf.libvirt.connection_uri == 'qemu:///system'
        assert conf.libvirt.virt_type == 'kvm'
        assert conf.libvirt.fall_back_to_test_driver is False
        assert conf.compute.reserved_host_memory_mb == 512
        assert conf.image.local_dir == os.path.join(ds.state, 'images')
        assert os.path.isdir(conf.image.local_dir)
        assert read_section(ds.conf, 'DEFAULT')['debug'] == ['True']

        # Database created and migrated by the real lifecycle-manage.
        assert ds.calls('recreate_database') == [
            ['recreate_database', 'lifecycle']]
        assert ds.calls('lifecycle-manage') == [
            ['lifecycle-manage', '--config-file', ds.conf, 'db', 'sync']]
        with sqlite3.connect(ds.db_file) as db:
            tables = {r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            assert 'alembic_version' in tables
            assert db.execute('SELECT version_num FROM alembic_version'
                              ).fetchone()[0]

        # nova.conf: devstack's filters kept, ours added.
        fs = ds.nova_filter_scheduler()
        assert fs['available_filters'] == [ALL_FILTERS, FILTER_CLASS]
        assert fs['enabled_filters'] == [
            DEVSTACK_NOVA_FILTERS + ',HostAggregateGroupFilter']
        assert read_section(ds.nova_conf, 'scheduler') == {
            'workers': ['2']}
        names = [c[0] for c in ds.calls()]
        # nova.conf is edited only after configure_neutron_nova is done.
        assert ds.calls('async_wait') == [
            ['async_wait', 'configure_neutron_nova']]
        assert names.index('async_wait') < names.index('iniadd')

        # Keystone: auth_token in front of the API, the service user's
        # token beside the user's to Glance and Cinder, the service user and
        # the endpoint (not "compute", which is nova-api's here).
        assert conf.api.auth_strategy == 'keystone'
        check_keystone_conf(ds, 'shelve-lifecycle')
        assert conf.service_user.send_service_user_token is True
        assert ds.calls('create_service_user') == [
            ['create_service_user', 'lifecycle', 'admin']]
        assert ds.calls('get_or_create_service') == [
            ['get_or_create_service', 'lifecycle', 'shelve-lifecycle',
             'shelve-lifecycle (Nova-compatible compute API)']]
        assert ds.calls('get_or_create_endpoint') == [
            ['get_or_create_endpoint', 'shelve-lifecycle', 'RegionOne',
             API_URL]]
        # Accounts once lifecycle.conf is written, before the services.
        assert names.index('configure_keystone_authtoken_middleware') < \
            names.index('create_service_user') < names.index('run_process')

        # The API under uwsgi, serving the WSGI entry point over HTTP on the
        # API's address and port (the URL of the catalog).
        check_uwsgi_conf(ds, '0.0.0.0:8784')
        assert not ds.calls('apache_site')

        # Services.
        bin_dir = ds.bin
        assert run_process_calls(ds) == {
            'lifecycle-api': [
                '%s/uwsgi --procname-prefix lifecycle-api --ini %s'
                % (bin_dir, ds.uwsgi_conf)],
            'lifecycle-conductor': [
                '%s/lifecycle-conductor --config-file %s'
                % (bin_dir, ds.conf)],
            'lifecycle-compute': [
                '%s/lifecycle-compute --config-file %s' % (bin_dir, ds.conf),
                'libvirt'],
        }
        assert ['wait_for_service', '60', API_URL + '/'] in ds.calls(
            'wait_for_service')
        assert ds.calls('wait_for_compute') == [['wait_for_compute', '120']]
        # start before the aggregates, db sync before start
        assert names.index('lifecycle-manage') < names.index('run_process')
        assert names.index('run_process') < names.index('openstack')

        # The storage group, in Nova (admin credentials) and in lifecycle
        # (its endpoint, with the devstack-admin cloud's token in the
        # environment, not the cloud: it would reach nova-api).
        group = {'properties': {'storage_group': 'default'},
                 'hosts': [NODE]}
        assert ds.openstack_state() == {
            'cloud:devstack-admin': {'lifecycle-default': group},
            'endpoint:' + API_URL: {'lifecycle-default': group},
        }
        check_openstack_calls(ds, ['--os-auth-type', 'admin_token',
                                    '--os-endpoint', API_URL], ADMIN_TOKEN)
        creates = [c[7:] for c in ds.calls('openstack')
                   if c[7:9] == ['aggregate', 'create']]
        assert creates == [['aggregate', 'create', '--property',
                            'storage_group=default', 'lifecycle-default']] * 2

        # A second stack.sh run over the same nova.conf and clouds changes
        # neither: no duplicate filter, no duplicate aggregate or host.
        with open(ds.nova_conf) as f:
            nova_conf_before = f.read()
        state_before = ds.openstack_state()
        ds.run(('stack', 'post-config'), ('stack', 'extra'))
        with open(ds.nova_conf) as f:
            assert f.read() == nova_conf_before
        assert ds.openstack_state() == state_before
        second = [c[7:9] for c in ds.calls('openstack', last_run_only=True)]
        assert ['aggregate', 'create'] not in second
        assert ['aggregate', 'add'] not in second

        # unstack.sh: stop the services; the files stay.
        ds.run(('unstack',))
        assert ds.calls('stop_process', last_run_only=True) == [
            ['stop_process', 'lifecycle-api'],
            ['stop_process', 'lifecycle-conductor'],
            ['stop_process', 'lifecycle-compute']]
        assert os.path.exists(ds.conf)

        # clean.sh: configuration and state go, Nova's instances stay.
        ds.run(('clean',))
        assert not os.path.exists(ds.conf_dir)
        assert not os.path.exists(ds.state)
        assert os.path.isdir(ds.instances)

    def test_instances_path_override_and_qemu(self, devstack):
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        shared = os.path.join(ds.root, 'nfs', 'instances')
        ds.extra_env.update({'LIFECYCLE_INSTANCES_PATH': shared,
                             'LIBVIRT_TYPE': 'qemu',
                             'LIFECYCLE_API_PORT': '9999'})
        ds.run(('stack', 'post-config'))
        conf = load_lifecycle_conf(ds.conf)
        assert conf.instances_path == shared
        assert os.path.isdir(shared)
        assert conf.libvirt.virt_type == 'qemu'
        assert conf.api.port == 9999

    def test_unsupported_libvirt_type_fails_clearly(self, devstack):
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        ds.extra_env['LIBVIRT_TYPE'] = 'lxc'
        result = ds.run(('stack', 'post-config'), check=False)
        assert result.returncode != 0
        assert 'LIBVIRT_TYPE kvm or qemu' in result.stderr
        assert not ds.calls('lifecycle-manage')

    def test_nova_scheduler_left_alone_when_disabled(self, devstack):
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        ds.extra_env['LIFECYCLE_CONFIGURE_NOVA_SCHEDULER'] = 'False'
        ds.run(('stack', 'post-config'))
        with open(ds.nova_conf) as f:
            assert f.read() == DEVSTACK_NOVA_CONF
        assert not ds.calls('async_wait')


    def test_nova_instances_path_refused(self, devstack):
        # The service's layout is Nova's: sharing Nova's instances path
        # would let Nova's image cache delete the service's bases.
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        ds.extra_env['LIFECYCLE_INSTANCES_PATH'] = ds.instances + '/'
        result = ds.run(('stack', 'post-config'), check=False)
        assert result.returncode != 0
        assert "must not be Nova's" in result.stderr
        assert not ds.calls('lifecycle-manage')


    def test_without_keystone_noauth2_and_embedded_server(self, devstack):
        """No Keystone here: noauth2, no accounts, the storage group added
        without a token; LIFECYCLE_USE_UWSGI=False runs lifecycle-api's
        embedded server."""
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        ds.enabled.remove('key')
        ds.extra_env['LIFECYCLE_USE_UWSGI'] = 'False'
        ds.run(('stack', 'install'), ('stack', 'post-config'),
               ('stack', 'extra'))
        conf = load_lifecycle_conf(ds.conf)
        assert conf.api.auth_strategy == 'noauth2'
        assert not read_section(ds.conf, 'keystone_authtoken')
        assert not read_section(ds.conf, 'service_user')
        for name in ('create_service_user', 'get_or_create_service',
                     'get_or_create_endpoint', 'write_uwsgi_config'):
            assert not ds.calls(name), name
        assert not os.path.exists(ds.uwsgi_conf)
        assert run_process_calls(ds)['lifecycle-api'] == [
            '%s/lifecycle-api --config-file %s' % (ds.bin, ds.conf)]
        check_openstack_calls(ds, ['--os-auth-type', 'none',
                                    '--os-endpoint', API_URL], '<unset>')
        assert ds.openstack_state()['endpoint:' + API_URL][
            'lifecycle-default']['hosts'] == [NODE]

    def test_keystone_without_nova_api_is_compute(self, devstack):
        """Without nova-api the API is the catalog's "compute", which the
        openstack client finds without any setting."""
        ds = devstack
        ds.enabled = [s for s in ds.enabled if s not in ('n-api', 'n-sch')]
        ds.run(('stack', 'post-config'))
        assert load_lifecycle_conf(ds.conf).api.auth_strategy == 'keystone'
        check_keystone_conf(ds, 'compute')
        assert ds.calls('get_or_create_endpoint') == [
            ['get_or_create_endpoint', 'compute', 'RegionOne', API_URL]]
        check_uwsgi_conf(ds, '0.0.0.0:8784')

    def test_keystone_disabled_explicitly(self, devstack):
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        ds.disabled = ['keystone']
        ds.run(('stack', 'post-config'))
        assert load_lifecycle_conf(ds.conf).api.auth_strategy == 'noauth2'
        assert not ds.calls('create_service_user')
