"""Policy in code (oslo.policy): every rule the REST API enforces, with
Nova's names and defaults where Nova has the API (``nova/policies``) and
``lifecycle:*`` names for the project's own. ``oslopolicy-sample-generator
--namespace lifecycle`` lists them (etc/lifecycle/policy-generator.conf)."""

import itertools

from lifecycle.policies import admin
from lifecycle.policies import base
from lifecycle.policies import servers
from lifecycle.policies import shelve


def list_rules():
    return list(itertools.chain(base.list_rules(), servers.list_rules(),
                                shelve.list_rules(), admin.list_rules()))
