"""The base rules of Nova's policy (``nova/policies/base.py``): the same
names and check strings, so a policy file written for Nova's roles works
here. Only the new defaults are kept; Nova's deprecated ``admin_or_owner``
and ``admin_api`` are not, this API never had them."""

from oslo_policy import policy

ADMIN = 'rule:context_is_admin'
PROJECT_MEMBER_OR_ADMIN = 'rule:project_member_or_admin'
PROJECT_READER_OR_ADMIN = 'rule:project_reader_or_admin'
RULE_ANY = '@'

rules = [
    policy.RuleDefault(
        'context_is_admin', 'role:admin',
        "Decides what is required for the 'is_admin:True' check to "
        "succeed."),
    policy.RuleDefault(
        'project_member_api', 'role:member and project_id:%(project_id)s',
        'Default rule for Project level non admin APIs.'),
    policy.RuleDefault(
        'project_reader_api', 'role:reader and project_id:%(project_id)s',
        'Default rule for Project level read only APIs.'),
    policy.RuleDefault(
        'project_member_or_admin',
        'rule:project_member_api or rule:context_is_admin',
        'Default rule for Project Member or admin APIs.'),
    policy.RuleDefault(
        'project_reader_or_admin',
        'rule:project_reader_api or rule:context_is_admin',
        'Default rule for Project reader or admin APIs.'),
]


def list_rules():
    return rules
