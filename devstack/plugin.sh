#!/bin/bash
#
# devstack/plugin.sh - devstack plugin of shelve-lifecycle
#
# devstack sources this file as ``plugin.sh <mode> [<phase>]``:
#
#   stack install      install the project (and the ``filters`` package)
#   stack post-config  write lifecycle.conf (and the API's uwsgi config),
#                      with Keystone the service user and the endpoint, add
#                      HostAggregateGroupFilter to nova-scheduler, create
#                      the database and its schema
#   stack extra        start the services, create the storage group aggregate
#   unstack            stop the services
#   clean              remove configuration and state
#
# With LIFECYCLE_MODE=nova (partial offload inside Nova) instead:
#
#   stack install      install the project into Nova's venv
#   stack post-config  HostAggregateGroupFilter and OriginalHostWeigher in
#                      nova-scheduler, $LIFECYCLE_NOVA_CONF for n-cpu
#   stack extra        restart n-cpu as lifecycle-nova-compute, create the
#                      storage group aggregate in Nova
#   clean              remove $LIFECYCLE_NOVA_CONF

LIFECYCLE_PLUGIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$LIFECYCLE_PLUGIN_DIR/lib/lifecycle"

if [[ "$LIFECYCLE_MODE" == "nova" ]]; then

    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing shelve-lifecycle (Nova plugin)"
        install_lifecycle

    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring partial offload inside Nova"
        if is_service_enabled n-sch; then
            async_wait configure_neutron_nova
            configure_nova_scheduler_for_lifecycle "$NOVA_CONF"
            configure_nova_scheduler_weigher_for_lifecycle "$NOVA_CONF"
        fi
        if is_service_enabled n-cpu; then
            configure_nova_for_partial_offload
        fi

    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        if is_service_enabled n-cpu; then
            echo_summary "Running n-cpu as lifecycle-nova-compute"
            start_nova_compute_with_partial_offload
            if [[ "$LIFECYCLE_CREATE_AGGREGATE" == "True" ]]; then
                create_nova_storage_group
            fi
        fi
    fi

    if [[ "$1" == "clean" ]]; then
        rm -f "$LIFECYCLE_NOVA_CONF"
    fi

elif is_service_enabled lifecycle-api lifecycle-conductor \
        lifecycle-compute; then

    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing shelve-lifecycle"
        install_lifecycle

    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring shelve-lifecycle"
        configure_lifecycle
        if is_service_enabled lifecycle-api && \
                is_service_enabled keystone && \
                [[ "$(lifecycle_auth_strategy)" == "keystone" ]]; then
            create_lifecycle_accounts
        fi

        if is_service_enabled n-sch && \
                [[ "$LIFECYCLE_CONFIGURE_NOVA_SCHEDULER" == "True" ]]; then
            # configure_neutron_nova edits nova.conf in the background until
            # stack.sh waits for it (after this phase): wait now, so that
            # the two rewrites of nova.conf cannot race.
            async_wait configure_neutron_nova
            configure_nova_scheduler_for_lifecycle "$NOVA_CONF"
        fi

        if is_service_enabled lifecycle-api lifecycle-conductor; then
            init_lifecycle
        fi

    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting shelve-lifecycle"
        start_lifecycle
        if [[ "$LIFECYCLE_CREATE_AGGREGATE" == "True" ]]; then
            create_lifecycle_storage_group
        fi
    fi

    if [[ "$1" == "unstack" ]]; then
        stop_lifecycle
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_lifecycle
    fi
fi
