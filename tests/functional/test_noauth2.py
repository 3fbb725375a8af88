"""The tenant-isolation and policy rules under noauth2 (the all-in-one's
default): ``X-Auth-Token: USER:PROJECT`` tokens, admin only for ``admin``."""

from tests.functional import auth_checks


def test_noauth2_isolation_and_policy(aio):
    member_a = auth_checks.TokenClient(aio.url, 'alice:project-a')
    member_b = auth_checks.TokenClient(aio.url, 'bob:project-b')
    admin = auth_checks.TokenClient(aio.url, None)  # no token: admin
    auth_checks.check_rules(member_a, member_b, admin,
                            aio.default_image['id'], 'project-a')


def test_noauth2_user_named_admin_is_admin(aio):
    status, body = auth_checks.TokenClient(
        aio.url, 'admin:project-z').request('GET', '/os-hypervisors')
    assert status == 200, body
    status, body = auth_checks.TokenClient(
        aio.url, 'root:project-z').request('GET', '/os-hypervisors')
    auth_checks.forbidden(status, body, 'os_compute_api:os-hypervisors:list')
