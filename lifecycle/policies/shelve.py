"""``os_compute_api:os-shelve:*``, Nova's names and defaults."""

from oslo_policy import policy

from lifecycle.policies import base

POLICY_ROOT = 'os_compute_api:os-shelve:%s'


def _rule(name, check_str, description, action):
    return policy.DocumentedRuleDefault(
        name=POLICY_ROOT % name, check_str=check_str,
        description=description,
        operations=[{'method': 'POST',
                     'path': '/servers/{server_id}/action (%s)' % action}],
        scope_types=['project'])


rules = [
    _rule('shelve', base.PROJECT_MEMBER_OR_ADMIN, 'Shelve server', 'shelve'),
    _rule('unshelve', base.PROJECT_MEMBER_OR_ADMIN,
          'Unshelve (restore) shelved server', 'unshelve'),
    _rule('unshelve_to_host', base.ADMIN,
          'Unshelve (restore) shelve offloaded server to a specific host',
          'unshelve'),
    _rule('shelve_offload', base.ADMIN, 'Shelf-offload (remove) server',
          'shelveOffload'),
]


def list_rules():
    return rules
