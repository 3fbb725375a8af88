"""The tenant-isolation and policy rules under noauth2 (the all-in-one's
default): ``X-Auth-Token: USER:PROJECT`` tokens, admin only for ``admin``."""

from tests.functional import auth_checks
from tests.harness.client import Client


def test_noauth2_isolation_and_policy(aio):
    member_a = Client(aio.url, token='alice:project-a')
    member_b = Client(aio.url, token='bob:project-b')
    admin = Client(aio.url, token=None)  # no token: admin
    auth_checks.check_rules(member_a, member_b, admin,
                            aio.default_image['id'], 'project-a')


def test_noauth2_user_named_admin_is_admin(aio):
    status, body = Client(
        aio.url, token='admin:project-z').request('GET', '/os-hypervisors')
    assert status == 200, body
    status, body = Client(
        aio.url, token='root:project-z').request('GET', '/os-hypervisors')
    auth_checks.forbidden(status, body, 'os_compute_api:os-hypervisors:list')
