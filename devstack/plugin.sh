#!/bin/bash
#
# devstack/plugin.sh - devstack plugin of shelve-lifecycle
#
# devstack sources this file as ``plugin.sh <mode> [<phase>]``:
#
#   stack install      install the project (and the ``filters`` package)
#   stack post-config  write lifecycle.conf, add HostAggregateGroupFilter to
#                      nova-scheduler, create the database and its schema
#   stack extra        start the services, create the storage group aggregate
#   unstack            stop the services
#   clean              remove configuration and state

LIFECYCLE_PLUGIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$LIFECYCLE_PLUGIN_DIR/lib/lifecycle"

if is_service_enabled lifecycle-api lifecycle-conductor lifecycle-compute; then

    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing shelve-lifecycle"
        install_lifecycle

    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring shelve-lifecycle"
        configure_lifecycle

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
