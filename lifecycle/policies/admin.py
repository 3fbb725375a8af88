"""Flavor management, aggregates and hypervisors (Nova's names, admin
only), and the project's own ``os-storage-groups`` and retained-disk
details (admin only: they name hosts and paths of the storage)."""

from oslo_policy import policy

from lifecycle.policies import base

FLAVOR_MANAGE = 'os_compute_api:os-flavor-manage:%s'
AGGREGATES = 'os_compute_api:os-aggregates:%s'
HYPERVISORS = 'os_compute_api:os-hypervisors:%s'
STORAGE_GROUPS = 'lifecycle:os-storage-groups:%s'
RETAINED_DISK = 'lifecycle:retained_disk'


def _rule(name, description, operations, check_str=base.ADMIN):
    return policy.DocumentedRuleDefault(
        name=name, check_str=check_str, description=description,
        operations=[{'method': m, 'path': p} for m, p in operations],
        scope_types=['project'])


rules = [
    _rule(FLAVOR_MANAGE % 'create', 'Create a flavor',
          [('POST', '/flavors')]),
    _rule(AGGREGATES % 'index', 'List all aggregates',
          [('GET', '/os-aggregates')]),
    _rule(AGGREGATES % 'create', 'Create an aggregate',
          [('POST', '/os-aggregates')]),
    _rule(AGGREGATES % 'show', 'Show details for an aggregate',
          [('GET', '/os-aggregates/{aggregate_id}')]),
    _rule(AGGREGATES % 'update',
          'Update name and/or availability zone for an aggregate',
          [('PUT', '/os-aggregates/{aggregate_id}')]),
    _rule(AGGREGATES % 'delete', 'Delete an aggregate',
          [('DELETE', '/os-aggregates/{aggregate_id}')]),
    _rule(AGGREGATES % 'add_host', 'Add a host to an aggregate',
          [('POST', '/os-aggregates/{aggregate_id}/action (add_host)')]),
    _rule(AGGREGATES % 'remove_host', 'Remove a host from an aggregate',
          [('POST', '/os-aggregates/{aggregate_id}/action (remove_host)')]),
    _rule(AGGREGATES % 'set_metadata',
          'Create or replace metadata for an aggregate',
          [('POST', '/os-aggregates/{aggregate_id}/action (set_metadata)')]),
    _rule(HYPERVISORS % 'list', 'List all hypervisors.',
          [('GET', '/os-hypervisors')]),
    _rule(HYPERVISORS % 'list-detail', 'List all hypervisors with details',
          [('GET', '/os-hypervisors/detail')]),
    _rule(STORAGE_GROUPS % 'index',
          'List the storage groups with their space and retained disks',
          [('GET', '/os-storage-groups')]),
    _rule(STORAGE_GROUPS % 'show',
          'Show a storage group with its space and retained disks',
          [('GET', '/os-storage-groups/{name}')]),
    _rule(RETAINED_DISK,
          'Show the host and the location of a shelved server\'s retained '
          'disk in lifecycle:retained_disk (others see its storage group '
          'and since when only)',
          [('GET', '/servers/{server_id}'), ('GET', '/servers/detail')]),
]


def list_rules():
    return rules
