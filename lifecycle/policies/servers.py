"""``os_compute_api:servers:*`` and the extended attributes, as Nova."""

from oslo_policy import policy

from lifecycle.policies import base

SERVERS = 'os_compute_api:servers:%s'
EXTENDED_ATTRIBUTES = 'os_compute_api:os-extended-server-attributes'
HOST_STATUS = SERVERS % 'show:host_status'


def _rule(name, check_str, description, operations):
    return policy.DocumentedRuleDefault(
        name=name, check_str=check_str, description=description,
        operations=[{'method': m, 'path': p} for m, p in operations],
        scope_types=['project'])


rules = [
    _rule(SERVERS % 'index', base.PROJECT_READER_OR_ADMIN,
          'List all servers', [('GET', '/servers')]),
    _rule(SERVERS % 'detail', base.PROJECT_READER_OR_ADMIN,
          'List all servers with detailed information',
          [('GET', '/servers/detail')]),
    _rule(SERVERS % 'index:get_all_tenants', base.ADMIN,
          'List all servers for all projects', [('GET', '/servers')]),
    _rule(SERVERS % 'detail:get_all_tenants', base.ADMIN,
          'List all servers with detailed information for all projects',
          [('GET', '/servers/detail')]),
    _rule(SERVERS % 'allow_all_filters', base.ADMIN,
          'Allow all filters when listing servers',
          [('GET', '/servers'), ('GET', '/servers/detail')]),
    _rule(SERVERS % 'show', base.PROJECT_READER_OR_ADMIN,
          'Show a server', [('GET', '/servers/{server_id}')]),
    _rule(HOST_STATUS, base.ADMIN,
          'Show a server with additional host status information '
          '(microversion 2.16 and later)',
          [('GET', '/servers/{server_id}'), ('GET', '/servers/detail')]),
    _rule(SERVERS % 'create', base.PROJECT_MEMBER_OR_ADMIN,
          'Create a server', [('POST', '/servers')]),
    _rule(SERVERS % 'create:forced_host', base.ADMIN,
          'Create a server on the specified host and/or node (the '
          'availability zone "zone:host" form)', [('POST', '/servers')]),
    _rule('compute:servers:create:requested_destination', base.ADMIN,
          'Create a server on the requested compute host (microversion '
          '2.74 "host")', [('POST', '/servers')]),
    _rule(SERVERS % 'create:attach_volume', base.PROJECT_MEMBER_OR_ADMIN,
          'Create a server with the requested volume attached to it',
          [('POST', '/servers')]),
    _rule(SERVERS % 'delete', base.PROJECT_MEMBER_OR_ADMIN,
          'Delete a server', [('DELETE', '/servers/{server_id}')]),
    _rule(SERVERS % 'start', base.PROJECT_MEMBER_OR_ADMIN,
          'Start a server',
          [('POST', '/servers/{server_id}/action (os-start)')]),
    _rule(SERVERS % 'stop', base.PROJECT_MEMBER_OR_ADMIN,
          'Stop a server',
          [('POST', '/servers/{server_id}/action (os-stop)')]),
    _rule(EXTENDED_ATTRIBUTES, base.ADMIN,
          'Return extended attributes for a server (OS-EXT-SRV-ATTR:host, '
          'instance_name, hypervisor_hostname and the 2.3 ones)',
          [('GET', '/servers/{server_id}'), ('GET', '/servers/detail')]),
]


def list_rules():
    return rules
