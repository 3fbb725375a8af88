# Stand-ins for the devstack functions the plugin calls (see
# tests/functional/devstack_plugin/stand_in.py). Every call is recorded in $SHIM_CALLS, fields tab-separated.

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
