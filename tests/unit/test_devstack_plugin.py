"""The devstack plugin (devstack/), sourced in bash with a shim of devstack.

devstack itself cannot run here, so each test writes a small shim: bash
functions standing in for the devstack functions the plugin calls, and a
``bin/`` directory standing in for devstack's venv. The shim records every
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
- ``bin/openstack`` is a fake client keeping aggregates per cloud (the
  devstack-admin cloud, i.e. Nova, and the lifecycle API endpoint) in a JSON
  file, failing like the real one on duplicates; ``token issue`` prints
  :data:`ADMIN_TOKEN`.

The ``lifecycle`` namespace of oslo-config-generator is an entry point of the
installed package; when the package is not installed (a bare checkout on a
laptop) the tests declare it from setup.cfg in a throw-away ``.dist-info`` on
PYTHONPATH, so the generator still runs for real. Under CI=true the package
must be installed (tools/setup.sh and tox do that) and this is not done.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from tests import entry_points
from tests.conftest import require

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
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

SHIM = r'''
# Stand-ins for the devstack functions the plugin calls (see the test's
# docstring). Every call is recorded in $SHIM_CALLS, fields tab-separated.

function _shim_record {
    local IFS=$'\t'
    echo "$*" >> "$SHIM_CALLS"
}

function echo_summary {
    echo "summary: $*"
}

function warn {
    echo "warn: $*" >&2
}

function die {
    local line=$1
    shift
    _shim_record die "$*"
    echo "die at line $line: $*" >&2
    exit 1
}

function define_plugin {
    _shim_record define_plugin "$@"
}

function plugin_requires {
    _shim_record plugin_requires "$@"
}

function trueorfalse {
    local default=$1
    case "${!2:-}" in
        "") echo "$default" ;;
        0|no|No|NO|false|False|FALSE) echo False ;;
        1|yes|Yes|YES|true|True|TRUE) echo True ;;
        *) echo "$default" ;;
    esac
}

function is_service_enabled {
    local service
    for service in "$@"; do
        if [[ ",$ENABLED_SERVICES," == *",$service,"* ]]; then
            return 0
        fi
        if [[ $service == nova && ",$ENABLED_SERVICES" == *",n-"* ]]; then
            return 0
        fi
        # lib/keystone's is_keystone_enabled
        if [[ $service == keystone && ",$ENABLED_SERVICES," == *",key,"* &&
                ",${DISABLED_SERVICES:-}," != *",keystone,"* ]]; then
            return 0
        fi
    done
    return 1
}

function enable_service {
    local service
    for service in "$@"; do
        if [[ ",${DISABLED_SERVICES:-}," == *",$service,"* ]]; then
            warn "Attempt to enable_service $service when it has been disabled"
            continue
        fi
        if ! is_service_enabled "$service"; then
            ENABLED_SERVICES="${ENABLED_SERVICES:+$ENABLED_SERVICES,}$service"
        fi
    done
}

# --- inc/ini-config, devstack's semantics -----------------------------------

function iniget {
    local line
    line=$(sed -ne "/^\[$2\]/,/^\[.*\]/ { /^$3[ \t]*=/ p; }" "$1")
    echo ${line#*=}
}

function iniget_multiline {
    local values
    values=$(sed -ne "/^\[$2\]/,/^\[.*\]/ { s/^$3[ \t]*=[ \t]*//gp; }" "$1")
    echo ${values}
}

function ini_has_option {
    if [[ $1 == -sudo ]]; then
        shift
    fi
    local line
    line=$(sed -ne "/^\[$2\]/,/^\[.*\]/ { /^$3[ \t]*=/ p; }" "$1")
    [ -n "$line" ]
}

function iniset {
    if [[ $1 == -sudo ]]; then
        shift
    fi
    local file=$1 section=$2 option=$3 value=$4
    value=$(echo $value | sed -e 's/\\/\\\\/g' -e 's/&/\\&/g')
    if ! grep -q "^\[$section\]" "$file" 2>/dev/null; then
        echo -e "\n[$section]" >> "$file"
    fi
    if ! ini_has_option "$file" "$section" "$option"; then
        sed -i -e "/^\[$section\]/ a\\
$option = $value
" "$file"
    else
        local sep=$'\x01' expr
        expr="/^\[$section\]/,/^\[.*\]/ s${sep}^\($option[ \t]*=[ \t]*\).*\$"
        sed -i -e "${expr}${sep}\1${value}${sep}" "$file"
    fi
}

function iniset_multiline {
    if [[ $1 == -sudo ]]; then
        shift
    fi
    local file=$1 section=$2 option=$3
    shift 3
    local values="" v
    for v in $@; do
        values="$v ${values}"
    done
    if ! grep -q "^\[$section\]" "$file"; then
        echo -e "\n[$section]" >> "$file"
    else
        sed -i -e "/^\[$section\]/,/^\[.*\]/ { /^$option[ \t]*=/ d; }" "$file"
    fi
    for v in $values; do
        sed -i -e "/^\[$section\]/ a\\
$option = $v
" "$file"
    done
}

function iniadd {
    if [[ $1 == -sudo ]]; then
        shift
    fi
    local file=$1 section=$2 option=$3
    shift 3
    _shim_record iniadd "$file" "$section" "$option" "$@"
    local values
    values="$(iniget_multiline $file $section $option) $@"
    iniset_multiline $file $section $option $values
}

# --- lib/keystone, devstack's semantics -------------------------------------

function configure_keystoneauth {
    _shim_record configure_keystoneauth "$@"
    local conf_file=$1 admin_user=$2 section=$3
    iniset $conf_file $section auth_type password
    iniset $conf_file $section interface public
    iniset $conf_file $section auth_url $KEYSTONE_SERVICE_URI
    iniset $conf_file $section username $admin_user
    iniset $conf_file $section password $SERVICE_PASSWORD
    iniset $conf_file $section user_domain_name "$SERVICE_DOMAIN_NAME"
    iniset $conf_file $section project_name $SERVICE_PROJECT_NAME
    iniset $conf_file $section project_domain_name "$SERVICE_DOMAIN_NAME"
}

function configure_keystone_authtoken_middleware {
    _shim_record configure_keystone_authtoken_middleware "$@"
    local conf_file=$1 admin_user=$2 section=${3:-keystone_authtoken}
    local service_type=$4
    configure_keystoneauth $conf_file $admin_user $section
    iniset $conf_file $section www_authenticate_uri $KEYSTONE_SERVICE_URI
    iniset $conf_file $section cafile $SSL_BUNDLE_FILE
    iniset $conf_file $section memcached_servers $MEMCACHE_SERVERS
    if [[ -n "$service_type" ]]; then
        iniset $conf_file $section service_type $service_type
    fi
}

function create_service_user {
    _shim_record create_service_user "$@"
}

function get_or_create_service {
    _shim_record get_or_create_service "$@"
}

function get_or_create_endpoint {
    _shim_record get_or_create_endpoint "$@"
}

# --- lib/apache --------------------------------------------------------------

function write_uwsgi_config {
    _shim_record write_uwsgi_config "$@"
    local conf=$1 wsgi=$2 url=$3 http=$4 name=$5
    rm -rf $conf
    if [[ "$wsgi" =~ ^[a-zA-Z0-9_.]+:[a-zA-Z0-9_]+$ ]]; then
        iniset "$conf" uwsgi module "$wsgi"
    else
        iniset "$conf" uwsgi wsgi-file "$wsgi"
    fi
    iniset "$conf" uwsgi processes $API_WORKERS
    iniset "$conf" uwsgi master true
    if [[ -n "$http" ]]; then
        iniset "$conf" uwsgi http $http
    else
        # devstack proxies $url from Apache to a socket of uwsgi.
        _shim_record apache_site "$name" "$url"
        iniset "$conf" uwsgi socket "/var/run/uwsgi/${name}.socket"
    fi
}

# --- services, database, message bus ----------------------------------------

function get_python_exec_prefix {
    echo "$SHIM_DIR/bin"
}

function setup_develop {
    _shim_record setup_develop "$@"
}

function recreate_database {
    _shim_record recreate_database "$@"
    rm -f "$SHIM_DIR/db/$1.sqlite"
}

function database_connection_url {
    echo "sqlite:///$SHIM_DIR/db/$1.sqlite"
}

function get_transport_url {
    echo "rabbit://stackrabbit:secret@$SERVICE_HOST:5672/$1"
}

function run_process {
    if is_service_enabled "$1"; then
        _shim_record run_process "$@"
    fi
}

function stop_process {
    if is_service_enabled "$1"; then
        _shim_record stop_process "$@"
    fi
}

function wait_for_service {
    _shim_record wait_for_service "$@"
}

function wait_for_compute {
    _shim_record wait_for_compute "$@"
}

function async_wait {
    _shim_record async_wait "$@"
}

function sudo {
    _shim_record sudo "$@"
    "$@"
}
'''

RECORDING_EXECUTABLE = '''#!/bin/bash
(IFS=$'\\t'; echo "$(basename "$0")"$'\\t'"$*") >> "$SHIM_CALLS"
exec "$SHIM_PYTHON" %s "$@"
'''

FAKE_OPENSTACK = r'''
"""Fake ``openstack`` client: aggregates per cloud, in a JSON file."""
import json
import os
import sys

argv = sys.argv[1:]
with open(os.environ['SHIM_CALLS'], 'a') as log:
    log.write('\t'.join(['openstack', 'env:OS_CLOUD=%s'
                         % os.environ.get('OS_CLOUD', '<unset>'),
                         'env:OS_TOKEN=%s'
                         % os.environ.get('OS_TOKEN', '<unset>')] + argv))
    log.write('\n')

cloud = 'cloud:' + os.environ.get('OS_CLOUD', '<unset>')
while argv and argv[0].startswith('--os-'):
    opt, _, value = argv.pop(0).partition('=')
    if not _:
        value = argv.pop(0)
    if opt == '--os-cloud':
        cloud = 'cloud:' + value
    elif opt == '--os-endpoint':
        cloud = 'endpoint:' + value

state_file = os.path.join(os.environ['SHIM_DIR'], 'openstack.json')
try:
    with open(state_file) as f:
        state = json.load(f)
except FileNotFoundError:
    state = {}
aggregates = state.setdefault(cloud, {})

if argv[:2] == ['token', 'issue']:
    assert cloud == 'cloud:devstack-admin', cloud
    print('@ADMIN_TOKEN@')
    sys.exit(0)
if argv[:1] != ['aggregate']:
    sys.exit('fake openstack: unsupported command %s' % argv)
action, args = argv[1], argv[2:]
if action == 'add':
    assert args[0] == 'host', args
    args = args[1:]
props, column, positional = {}, None, []
while args:
    arg = args.pop(0)
    if arg == '--property':
        key, _, value = args.pop(0).partition('=')
        props[key] = value
    elif arg == '-c':
        column = args.pop(0)
    elif arg == '-f':
        assert args.pop(0) == 'value'
    else:
        positional.append(arg)
name = positional[0]
if action != 'create' and name not in aggregates:
    sys.exit("No aggregate with a name or ID of '%s' exists." % name)
if action == 'create':
    if name in aggregates:
        sys.exit('ConflictException: 409: Aggregate %s already exists.'
                 % name)
    aggregates[name] = {'properties': props, 'hosts': []}
elif action == 'set':
    aggregates[name]['properties'].update(props)
elif action == 'add':
    if positional[1] in aggregates[name]['hosts']:
        sys.exit('ConflictException: 409: Aggregate %s already has host %s.'
                 % (name, positional[1]))
    aggregates[name]['hosts'].append(positional[1])
elif action == 'show':
    if column == 'hosts':
        print(', '.join(aggregates[name]['hosts']))
    else:
        print(json.dumps(aggregates[name]))
else:
    sys.exit('fake openstack: unsupported aggregate action %s' % action)
with open(state_file, 'w') as f:
    json.dump(state, f)
'''.replace('@ADMIN_TOKEN@', ADMIN_TOKEN)

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
        with open(os.path.join(self.shim_dir, 'devstack-shim.sh'), 'w') as f:
            f.write(SHIM)
        self._executable('oslo-config-generator',
                         RECORDING_EXECUTABLE % '-m oslo_config.generator')
        self._executable('lifecycle-manage',
                         RECORDING_EXECUTABLE % '-m lifecycle.cmd.manage')
        fake = os.path.join(self.shim_dir, 'fake_openstack.py')
        with open(fake, 'w') as f:
            f.write(FAKE_OPENSTACK)
        self._executable('openstack', '#!/bin/bash\nexec "$SHIM_PYTHON" %s '
                         '"$@"\n' % fake)
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
            'source "$SHIM_DIR/devstack-shim.sh"',
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


@pytest.fixture
def devstack(tmp_path):
    return Devstack(tmp_path)


def _run_process_calls(ds):
    return {c[1]: c[2:] for c in ds.calls('run_process')}


def _check_keystone_conf(ds, service_type):
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


def _check_uwsgi_conf(ds, http):
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


def _check_openstack_calls(ds, lifecycle_args, token):
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
        _check_keystone_conf(ds, 'shelve-lifecycle')
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
        _check_uwsgi_conf(ds, '0.0.0.0:8784')
        assert not ds.calls('apache_site')

        # Services.
        bin_dir = ds.bin
        assert _run_process_calls(ds) == {
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
        _check_openstack_calls(ds, ['--os-auth-type', 'admin_token',
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
        assert _run_process_calls(ds)['lifecycle-api'] == [
            '%s/lifecycle-api --config-file %s' % (ds.bin, ds.conf)]
        _check_openstack_calls(ds, ['--os-auth-type', 'none',
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
        _check_keystone_conf(ds, 'compute')
        assert ds.calls('get_or_create_endpoint') == [
            ['get_or_create_endpoint', 'compute', 'RegionOne', API_URL]]
        _check_uwsgi_conf(ds, '0.0.0.0:8784')

    def test_keystone_disabled_explicitly(self, devstack):
        ds = devstack
        with open(ds.nova_conf, 'w') as f:
            f.write(DEVSTACK_NOVA_CONF)
        ds.disabled = ['keystone']
        ds.run(('stack', 'post-config'))
        assert load_lifecycle_conf(ds.conf).api.auth_strategy == 'noauth2'
        assert not ds.calls('create_service_user')


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
        assert list(_run_process_calls(ds)) == ['lifecycle-compute']
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
        _check_openstack_calls(ds, ['--os-auth-type', 'admin_token',
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


def test_shim_ini_functions_handle_multiline_options(devstack):
    """The shim's ini functions behave as devstack's (the plugin's tests
    are only as good as them)."""
    ds = devstack
    path = os.path.join(ds.root, 'x.conf')
    ds.run(textwrap.dedent('''
        iniset {p} a one 1
        iniset {p} a one 2
        iniadd {p} b multi x
        iniadd {p} b multi y z
        iniset {p} c url 'rabbit://u:p@h:5672/&x'
        test "$(iniget {p} a one)" = 2
        test "$(iniget_multiline {p} b multi)" = "x y z"
        test -z "$(iniget {p} a missing)"
        ini_has_option {p} a one
        ! ini_has_option {p} b one
    ''').format(p=path))
    assert read_section(path, 'a') == {'one': ['2']}
    assert read_section(path, 'b') == {'multi': ['x', 'y', 'z']}
    assert read_section(path, 'c') == {'url': ['rabbit://u:p@h:5672/&x']}


def _bashate():
    for candidate in (os.path.join(os.path.dirname(sys.executable),
                                   'bashate'), shutil.which('bashate')):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def test_bashate():
    bashate = _bashate()
    require(bashate is not None, 'bashate (test-requirements.txt)')
    files = [os.path.join(DEVSTACK, 'plugin.sh'),
             os.path.join(DEVSTACK, 'settings')]
    files += sorted(os.path.join(DEVSTACK, 'lib', name)
                    for name in os.listdir(os.path.join(DEVSTACK, 'lib')))
    # Every rule is an error, the 79-column limit included.
    result = subprocess.run([bashate, '-v', '-e', 'E*'] + files,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in files:
        assert 'Running bashate on %s' % path in result.stdout
