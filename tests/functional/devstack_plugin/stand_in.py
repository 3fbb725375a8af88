"""A stand-in of devstack for the tests of the devstack plugin (devstack/).

devstack itself cannot run here (it is not a Python package and needs the
network), so each test sources the plugin in bash over a shim: bash functions
standing in for the devstack functions the plugin calls
(``stand_in_files/devstack-functions.sh``), and a ``bin/`` directory
standing in for devstack's venv. The shim records every
call in a log (one line per call, fields separated by tabs) and has these
behaviours:

- ``iniset``, ``iniset_multiline``, ``iniadd``, ``iniget``,
  ``iniget_multiline``, ``ini_has_option``: devstack's own semantics
  (inc/ini-config), on real files, including multi-line options;
- ``is_service_enabled``, ``enable_service`` (honours DISABLED_SERVICES, as
  devstack's does), ``trueorfalse``, ``run_process`` and ``stop_process``
  (recorded only for enabled services, as devstack runs units only for
  those), ``setup_develop``, ``recreate_database``, ``wait_for_service``,
  ``wait_for_compute``, ``async_wait``, ``sudo`` (runs the command as is),
  ``die`` (exits non-zero);
- ``database_connection_url`` gives a SQLite URL in the test directory and
  ``get_transport_url`` a RabbitMQ URL;
- lib/keystone's ``configure_keystoneauth`` and
  ``configure_keystone_authtoken_middleware`` write what devstack's write;
  ``create_service_user``, ``get_or_create_service`` and
  ``get_or_create_endpoint`` are recorded; ``is_service_enabled keystone``
  is devstack's ``is_keystone_enabled`` (the service ``key``);
- lib/apache's ``write_uwsgi_config`` writes the options of devstack's that
  the plugin relies on (``module``, ``http``; no Apache site when ``http``
  is given), and ``bin/uwsgi`` is a stand-in for ``which uwsgi``;
- ``bin/oslo-config-generator`` is the real generator of this venv and
  ``bin/lifecycle-manage`` the real command, so the configuration file is
  really generated and ``db sync`` really builds the schema;
- ``bin/openstack`` (``stand_in_files/fake_openstack.py``) is a fake client
  keeping aggregates per cloud (the devstack-admin cloud, i.e. Nova, and the
  lifecycle API endpoint) in a JSON file, failing like the real one on
  duplicates; ``token issue`` prints :data:`ADMIN_TOKEN`.

The ``lifecycle`` namespace of oslo-config-generator is an entry point of the
installed package; when the package is not installed (a bare checkout on a
laptop) the tests declare it from setup.cfg in a throw-away ``.dist-info`` on
PYTHONPATH, so the generator still runs for real. Under CI=true the package
must be installed (tools/setup.sh and tox do that) and this is not done.
"""

import json
import os
import subprocess
import sys

from tests import entry_points

REPO = entry_points.REPO
FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     'stand_in_files')
DEVSTACK = os.path.join(REPO, 'devstack')

FILTER_CLASS = 'filters.host_aggregate_group.HostAggregateGroupFilter'
ALL_FILTERS = 'nova.scheduler.filters.all_filters'
# Nova's default [filter_scheduler] enabled_filters (nova/conf/scheduler.py).
NOVA_DEFAULT_FILTERS = ('ComputeFilter,ComputeCapabilitiesFilter,'
                        'ImagePropertiesFilter,ServerGroupAntiAffinityFilter,'
                        'ServerGroupAffinityFilter')
# What devstack's lib/nova writes into nova.conf (NOVA_FILTERS).
DEVSTACK_NOVA_FILTERS = NOVA_DEFAULT_FILTERS + ',SameHostFilter,' \
    'DifferentHostFilter'

SERVICE_HOST = '192.0.2.10'
NODE = 'devstack-node1'
API_URL = 'http://%s:8784/v2.1' % SERVICE_HOST
KEYSTONE_URI = 'http://%s/identity' % SERVICE_HOST
ADMIN_TOKEN = 'gAAAAAB-devstack-admin-token'
UWSGI_MODULE = 'lifecycle.wsgi.api:application'


RECORDING_EXECUTABLE = '''#!/bin/bash
(IFS=$'\\t'; echo "$(basename "$0")"$'\\t'"$*") >> "$SHIM_CALLS"
exec "$SHIM_PYTHON" %s "$@"
'''


# nova.conf as devstack's create_nova_conf leaves it (abridged).
DEVSTACK_NOVA_CONF = '''
[DEFAULT]
debug = True
my_ip = 192.0.2.10

[filter_scheduler]
enabled_filters = %s

[scheduler]
workers = 2
''' % DEVSTACK_NOVA_FILTERS



class Devstack:
    """A directory laid out like a devstack host, plus the shim."""

    def __init__(self, root):
        self.root = str(root)
        self.shim_dir = os.path.join(self.root, 'shim')
        self.bin = os.path.join(self.shim_dir, 'bin')
        self.calls_file = os.path.join(self.shim_dir, 'calls.log')
        self.dest = os.path.join(self.root, 'opt', 'stack')
        self.data_dir = os.path.join(self.dest, 'data')
        self.conf_dir = os.path.join(self.root, 'etc', 'lifecycle')
        self.conf = os.path.join(self.conf_dir, 'lifecycle.conf')
        self.nova_conf = os.path.join(self.root, 'etc', 'nova', 'nova.conf')
        self.instances = os.path.join(self.data_dir, 'nova', 'instances')
        self.state = os.path.join(self.data_dir, 'lifecycle')
        self.db_file = os.path.join(self.shim_dir, 'db', 'lifecycle.sqlite')
        for d in (self.bin, os.path.dirname(self.db_file),
                  os.path.dirname(self.nova_conf), self.instances):
            os.makedirs(d, exist_ok=True)
        self._executable('oslo-config-generator',
                         RECORDING_EXECUTABLE % '-m oslo_config.generator')
        self._executable('lifecycle-manage',
                         RECORDING_EXECUTABLE % '-m lifecycle.cmd.manage')
        self._executable('openstack', '#!/bin/bash\nexec "$SHIM_PYTHON" %s '
                         '"$@"\n' % os.path.join(FILES, 'fake_openstack.py'))
        self._executable('uwsgi', '#!/bin/bash\nexit 1\n')
        self.uwsgi_conf = os.path.join(self.conf_dir,
                                       'lifecycle-api-uwsgi.ini')
        self.pythonpath = [REPO]
        extra = entry_points.opts_entry_point_dir(
            os.path.join(self.shim_dir, 'ep'))
        if extra:
            self.pythonpath.append(extra)
        self.enabled = ['mysql', 'rabbit', 'key', 'n-api', 'n-cond',
                        'n-sch', 'n-cpu', 'placement-api', 'g-api']
        self.disabled = []
        self.extra_env = {}

    def _executable(self, name, text):
        path = os.path.join(self.bin, name)
        with open(path, 'w') as f:
            f.write(text)
        os.chmod(path, 0o755)

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(('LIFECYCLE_', 'OS_'))}
        env.update({
            'PATH': self.bin + os.pathsep + env.get('PATH', '/usr/bin:/bin'),
            'PYTHONPATH': os.pathsep.join(self.pythonpath),
            'SHIM_DIR': self.shim_dir,
            'SHIM_CALLS': self.calls_file,
            'SHIM_PYTHON': sys.executable,
            'SHIM_ADMIN_TOKEN': ADMIN_TOKEN,
            # stackrc, lib/nova, lib/nova_plugins/functions-libvirt
            'DEST': self.dest,
            'DATA_DIR': self.data_dir,
            'STACK_USER': subprocess.check_output(
                ['id', '-un'], text=True).strip(),
            'SERVICE_HOST': SERVICE_HOST,
            'SERVICE_LISTEN_ADDRESS': '0.0.0.0',
            'SERVICE_TIMEOUT': '60',
            'NOVA_READY_TIMEOUT': '120',
            'REGION_NAME': 'RegionOne',
            'ENABLE_DEBUG_LOG_LEVEL': 'True',
            'NOVA_CONF': self.nova_conf,
            'NOVA_INSTANCES_PATH': self.instances,
            'LIBVIRT_TYPE': 'kvm',
            'LIBVIRT_GROUP': 'libvirt',
            # lib/keystone, lib/apache
            'KEYSTONE_SERVICE_URI': KEYSTONE_URI,
            'SERVICE_PASSWORD': 'secretservice',
            'SERVICE_DOMAIN_NAME': 'Default',
            'SERVICE_PROJECT_NAME': 'service',
            'MEMCACHE_SERVERS': 'localhost:11211',
            'SSL_BUNDLE_FILE': '/opt/stack/data/ca-bundle.pem',
            'API_WORKERS': '2',
            # stack.sh exports it after writing clouds.yaml
            'OS_CLOUD': 'devstack-admin',
            # local.conf
            'LIFECYCLE_CONF_DIR': self.conf_dir,
            'LIFECYCLE_HOST': NODE,
        })
        env.update(self.extra_env)
        return env

    def run(self, *steps, check=True):
        """Run devstack-like steps in one bash process: each step is
        ``(mode, phase)`` for plugin.sh, or a raw line of bash."""
        lines = [
            'set -o errexit',
            'ENABLED_SERVICES=%s' % ','.join(self.enabled),
            'DISABLED_SERVICES=%s' % ','.join(self.disabled),
            'source "%s"' % os.path.join(FILES, 'devstack-functions.sh'),
            # load_plugin_settings
            'source "%s/settings"' % DEVSTACK,
        ]
        for step in steps:
            if isinstance(step, tuple):
                lines.append('source "%s/plugin.sh" %s'
                             % (DEVSTACK, ' '.join(step)))
            else:
                lines.append(step)
        with open(self.calls_file, 'a') as f:
            f.write('--- run\n')
        result = subprocess.run(['bash', '-c', '\n'.join(lines)],
                                env=self.env(), capture_output=True,
                                text=True, timeout=300)
        if check:
            assert result.returncode == 0, (
                'bash failed (%d)\nstdout:\n%s\nstderr:\n%s'
                % (result.returncode, result.stdout, result.stderr))
        return result

    def calls(self, name=None, last_run_only=False):
        with open(self.calls_file) as f:
            text = f.read()
        if last_run_only:
            text = text.rsplit('--- run\n', 1)[-1]
        out = []
        for line in text.splitlines():
            if line == '--- run':
                continue
            fields = line.split('\t')
            if name is None or fields[0] == name:
                out.append(fields)
        return out

    def openstack_state(self):
        with open(os.path.join(self.shim_dir, 'openstack.json')) as f:
            return json.load(f)

    def nova_filter_scheduler(self):
        return read_section(self.nova_conf, 'filter_scheduler')


def read_section(path, section):
    """Option -> list of values (one per line) in [section] of an ini file,
    keeping multi-line options that configparser would refuse."""
    values, current = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith('['):
                current = line.strip('[]')
            elif current == section and '=' in line and \
                    not line.startswith('#'):
                key, _, value = line.partition('=')
                values.setdefault(key.strip(), []).append(value.strip())
    return values


def load_lifecycle_conf(path):
    """The file as the services read it: oslo.config with every option of
    the project registered (types and choices checked)."""
    from oslo_config import cfg

    from lifecycle import conf as lifecycle_conf

    conf = cfg.ConfigOpts()
    lifecycle_conf.register_all(conf)
    conf([], project='lifecycle', default_config_files=[path],
         default_config_dirs=[])
    return conf



def run_process_calls(ds):
    return {c[1]: c[2:] for c in ds.calls('run_process')}


def check_keystone_conf(ds, service_type):
    """[keystone_authtoken] and [service_user] as devstack's lib/keystone
    writes them for the service user ``lifecycle``."""
    auth = {'auth_type': ['password'], 'interface': ['public'],
            'auth_url': [KEYSTONE_URI], 'username': ['lifecycle'],
            'password': ['secretservice'], 'user_domain_name': ['Default'],
            'project_name': ['service'], 'project_domain_name': ['Default']}
    assert read_section(ds.conf, 'keystone_authtoken') == dict(
        auth, www_authenticate_uri=[KEYSTONE_URI],
        cafile=['/opt/stack/data/ca-bundle.pem'],
        memcached_servers=['localhost:11211'], service_type=[service_type])
    assert read_section(ds.conf, 'service_user') == dict(
        auth, send_service_user_token=['True'])
    assert ds.calls('configure_keystone_authtoken_middleware') == [
        ['configure_keystone_authtoken_middleware', ds.conf, 'lifecycle',
         'keystone_authtoken', service_type]]


def check_uwsgi_conf(ds, http):
    assert ds.calls('write_uwsgi_config') == [
        ['write_uwsgi_config', ds.uwsgi_conf, UWSGI_MODULE, '', http,
         'lifecycle-api']]
    uwsgi = read_section(ds.uwsgi_conf, 'uwsgi')
    assert uwsgi['module'] == [UWSGI_MODULE]
    assert uwsgi['http'] == [http]
    assert uwsgi['env'] == ['LIFECYCLE_CONFIG_FILES=%s' % ds.conf]
    # The module uwsgi imports is this project's WSGI entry point.
    module, _, attr = UWSGI_MODULE.partition(':')
    path = os.path.join(REPO, *module.split('.')) + '.py'
    with open(path) as f:
        assert '\n%s = ' % attr in f.read(), path


def check_openstack_calls(ds, lifecycle_args, token):
    """Every ``openstack`` call: Nova's through the devstack-admin cloud,
    the lifecycle API's through ``lifecycle_args`` without it (and with
    ``token`` in OS_TOKEN)."""
    for call in ds.calls('openstack'):
        if '--os-endpoint' in call:
            assert call[1:3] == ['env:OS_CLOUD=<unset>',
                                 'env:OS_TOKEN=%s' % token]
            assert call[3:3 + len(lifecycle_args)] == lifecycle_args
        else:
            assert call[1:3] == ['env:OS_CLOUD=devstack-admin',
                                 'env:OS_TOKEN=<unset>']
            assert call[3:7] == ['--os-cloud', 'devstack-admin',
                                 '--os-region-name', 'RegionOne']
