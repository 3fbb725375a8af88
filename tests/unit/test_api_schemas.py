"""Request body and query string validation per microversion, with Nova's
error messages."""

import pytest

from lifecycle import exception
from lifecycle.api import schemas
from lifecycle.api import wsgi

IMAGE = '155d900f-4e14-4e4c-a73d-069cbf4541e6'


def _schema(versioned, version):
    return schemas.for_version(wsgi.APIVersion(version), versioned)


def ok(versioned, version, body):
    schemas.validate(_schema(versioned, version), body)


def bad(versioned, version, body) -> str:
    with pytest.raises(exception.Invalid) as e:
        schemas.validate(_schema(versioned, version), body)
    assert e.value.code == 400
    return e.value.format_message()


def _server(**fields):
    server = {'name': 'vm', 'imageRef': IMAGE, 'flavorRef': '1'}
    server.update(fields)
    return {'server': {k: v for k, v in server.items() if v is not None}}


# -- version selection --------------------------------------------------------

@pytest.mark.parametrize('version, expected', [
    ('2.1', schemas.server_create), ('2.36', schemas.server_create),
    ('2.37', schemas.server_create_v237), ('2.73', schemas.server_create_v237),
    ('2.74', schemas.server_create_v274), ('2.91', schemas.server_create_v274),
])
def test_server_create_schema_per_version(version, expected):
    assert _schema(schemas.SERVER_CREATE, version) is expected


def test_every_version_has_a_schema():
    for minor in range(1, 92):
        version = '2.%d' % minor
        for versioned in [schemas.SERVER_CREATE, schemas.FLAVOR_CREATE,
                          schemas.SERVER_INDEX_QUERY,
                          schemas.FLAVOR_INDEX_QUERY,
                          *schemas.ACTIONS.values()]:
            assert _schema(versioned, version) is not None, version


# -- server create ------------------------------------------------------------

def test_minimal_create_before_2_37():
    ok(schemas.SERVER_CREATE, '2.1', _server())
    ok(schemas.SERVER_CREATE, '2.36', _server(networks=[]))


def test_networks_required_from_2_37():
    message = bad(schemas.SERVER_CREATE, '2.37', _server())
    assert message.endswith("'networks' is a required property")
    assert message.startswith('Invalid input for field/attribute server.')
    for value in ('none', 'auto'):
        ok(schemas.SERVER_CREATE, '2.37', _server(networks=value))
        ok(schemas.SERVER_CREATE, '2.91', _server(networks=value))
    bad(schemas.SERVER_CREATE, '2.37', _server(networks='all'))
    bad(schemas.SERVER_CREATE, '2.36', _server(networks='none'))


def test_network_uuid_must_be_a_uuid_from_2_37():
    ok(schemas.SERVER_CREATE, '2.36', _server(networks=[{'uuid': 'x'}]))
    bad(schemas.SERVER_CREATE, '2.37', _server(networks=[{'uuid': 'x'}]))
    ok(schemas.SERVER_CREATE, '2.37', _server(networks=[{'uuid': IMAGE}]))


def test_host_only_from_2_74():
    message = bad(schemas.SERVER_CREATE, '2.73',
                  _server(networks='none', host='host-a1'))
    assert message.endswith(
        "Additional properties are not allowed ('host' was unexpected)")
    ok(schemas.SERVER_CREATE, '2.74', _server(networks='none',
                                              host='host-a1'))
    bad(schemas.SERVER_CREATE, '2.74', _server(networks='none',
                                               host='bad/host'))


@pytest.mark.parametrize('key, value', [
    ('key_name', 'k'), ('user_data', 'aGk='), ('security_groups', []),
    ('block_device_mapping', []), ('config_drive', True),
    ('hypervisor_hostname', 'h'), ('foo', 1)])
def test_unsupported_create_keys_are_rejected(key, value):
    message = bad(schemas.SERVER_CREATE, '2.91',
                  _server(networks='none', **{key: value}))
    assert message == (
        "Invalid input for field/attribute server. Value: %s. Additional "
        "properties are not allowed ('%s' was unexpected)" % (
            _server(networks='none', **{key: value})['server'], key))


def test_unknown_top_level_key_is_rejected():
    body = _server()
    body['os:scheduler_hintz'] = {}
    assert bad(schemas.SERVER_CREATE, '2.1', body) == (
        "Additional properties are not allowed ('os:scheduler_hintz' was "
        "unexpected)")


@pytest.mark.parametrize('key', ['os:scheduler_hints',
                                 'OS-SCH-HNT:scheduler_hints'])
def test_scheduler_hints_are_accepted_as_nova(key):
    """Nova's hints body: known hints typed, unknown ones accepted."""
    uuid = '8b1b5fa3-6a53-4b1c-9f0e-0d7f5c2a1e11'
    for hints in ({}, {'storage_group': 'group-a'},
                  {'same_host': uuid}, {'different_host': [uuid]},
                  {'whatever': ['x']}):
        body = _server()
        body[key] = hints
        ok(schemas.SERVER_CREATE, '2.1', body)
    body = _server()
    body[key] = {'same_host': 'not-a-uuid'}
    assert bad(schemas.SERVER_CREATE, '2.1', body)


def test_harmless_nova_keys_are_accepted():
    ok(schemas.SERVER_CREATE, '2.1', _server(
        min_count='1', max_count=1, adminPass='x',
        availability_zone='nova', metadata={'a.b:c d-e_f': 'v'},
        **{'OS-DCF:diskConfig': 'AUTO'}))


@pytest.mark.parametrize('name', [' vm', 'vm ', '\tvm', 'a\nb', '',
                                  'x\u2028y', '\u00a0vm', 'v\U0001F600'])
def test_invalid_names(name):
    message = bad(schemas.SERVER_CREATE, '2.1', _server(name=name))
    if name:
        assert message == (
            "An invalid 'name' value was provided. The name must be: "
            "printable characters. Can not start or end with whitespace.")


@pytest.mark.parametrize('name', ['vm', 'a b', 'ünïcödé', 'x' * 255, '1'])
def test_valid_names(name):
    ok(schemas.SERVER_CREATE, '2.1', _server(name=name))


def test_name_length_and_type():
    assert 'is too long' in bad(schemas.SERVER_CREATE, '2.1',
                                _server(name='x' * 256))
    assert "is not of type 'string'" in bad(schemas.SERVER_CREATE, '2.1',
                                            _server(name=5))


def test_image_ref_is_a_uuid_or_empty():
    ok(schemas.SERVER_CREATE, '2.1', _server(imageRef=''))
    bad(schemas.SERVER_CREATE, '2.1', _server(imageRef='cirros'))


def test_flavor_ref_string_or_integer():
    ok(schemas.SERVER_CREATE, '2.1', _server(flavorRef=1))
    ok(schemas.SERVER_CREATE, '2.1', _server(flavorRef='http://x/flavors/1'))
    bad(schemas.SERVER_CREATE, '2.1', _server(flavorRef=''))
    bad(schemas.SERVER_CREATE, '2.1', _server(flavorRef=None))


def test_metadata_keys_and_values():
    bad(schemas.SERVER_CREATE, '2.1', _server(metadata={'bad/key': 'v'}))
    bad(schemas.SERVER_CREATE, '2.1', _server(metadata={'k': 1}))
    bad(schemas.SERVER_CREATE, '2.1', _server(metadata={'k': 'v' * 256}))


def test_count_must_be_positive():
    bad(schemas.SERVER_CREATE, '2.1', _server(min_count=0))
    bad(schemas.SERVER_CREATE, '2.1', _server(max_count='0'))
    bad(schemas.SERVER_CREATE, '2.1', _server(min_count='one'))


def test_body_must_be_an_object():
    assert bad(schemas.SERVER_CREATE, '2.1', None) == (
        "None is not of type 'object'")
    assert bad(schemas.SERVER_CREATE, '2.1', {}) == (
        "'server' is a required property")


# -- actions ------------------------------------------------------------------

@pytest.mark.parametrize('action', ['shelve', 'shelveOffload', 'os-start',
                                    'os-stop'])
def test_simple_actions_take_any_value(action):
    for value in (None, {}, 'x'):
        ok(schemas.ACTIONS[action], '2.91', {action: value})
    bad(schemas.ACTIONS[action], '2.91', {action: None, 'other': 1})


@pytest.mark.parametrize('body', [
    {'unshelve': None}, {'unshelve': {}}, {'unshelve': {'host': 'h'}},
    {'unshelve': {'availability_zone': 'az'}}, {'unshelve': 'anything'}])
def test_unshelve_before_2_77_ignores_the_value(body):
    ok(schemas.ACTIONS['unshelve'], '2.76', body)


def test_unshelve_2_77_to_2_90():
    for version in ('2.77', '2.90'):
        ok(schemas.ACTIONS['unshelve'], version, {'unshelve': None})
        ok(schemas.ACTIONS['unshelve'], version,
           {'unshelve': {'availability_zone': 'az1'}})
        assert bad(schemas.ACTIONS['unshelve'], version,
                   {'unshelve': {}}).endswith(
            "'availability_zone' is a required property")
        bad(schemas.ACTIONS['unshelve'], version,
            {'unshelve': {'availability_zone': None}})
        bad(schemas.ACTIONS['unshelve'], version,
            {'unshelve': {'availability_zone': 'az1', 'host': 'h'}})
        bad(schemas.ACTIONS['unshelve'], version, {'unshelve': 'x'})


def test_unshelve_from_2_91():
    for value in (None, {}, {'host': 'host-a1'},
                  {'availability_zone': None},
                  {'availability_zone': 'az1', 'host': 'host-a1'},
                  {'availability_zone': None, 'host': 'host-a1'}):
        ok(schemas.ACTIONS['unshelve'], '2.91', {'unshelve': value})
    message = bad(schemas.ACTIONS['unshelve'], '2.91',
                  {'unshelve': {'foo': 'bar'}})
    assert message == ("Invalid input for field/attribute unshelve. Value: "
                       "{'foo': 'bar'}. Additional properties are not "
                       "allowed ('foo' was unexpected)")
    bad(schemas.ACTIONS['unshelve'], '2.91', {'unshelve': {'host': None}})
    bad(schemas.ACTIONS['unshelve'], '2.91', {'unshelve': {'host': 5}})


# -- flavors ------------------------------------------------------------------

def _flavor(**fields):
    flavor = {'name': 'f1', 'ram': 512, 'vcpus': 1, 'disk': 1}
    flavor.update(fields)
    return {'flavor': flavor}


def test_flavor_create_accepts_nova_bodies():
    ok(schemas.FLAVOR_CREATE, '2.1', _flavor())
    ok(schemas.FLAVOR_CREATE, '2.1', _flavor(
        id='f-1', ram='512', vcpus='2', disk='0', swap=0, rxtx_factor=1.5,
        **{'OS-FLV-EXT-DATA:ephemeral': 0,
           'os-flavor-access:is_public': 'false'}))
    ok(schemas.FLAVOR_CREATE, '2.1', _flavor(id=None))
    ok(schemas.FLAVOR_CREATE, '2.1', _flavor(id=7))


@pytest.mark.parametrize('fields', [
    {'ram': 0}, {'ram': '0'}, {'vcpus': -1}, {'disk': -1}, {'disk': '-1'},
    {'ram': 'lots'}, {'ram': 0x80000000}, {'id': ' lead'}, {'id': 'a/b'},
    {'rxtx_factor': 0}, {'os-flavor-access:is_public': 'maybe'},
    {'extra': 1}])
def test_flavor_create_rejects(fields):
    bad(schemas.FLAVOR_CREATE, '2.1', _flavor(**fields))


def test_flavor_create_requires_fields():
    assert bad(schemas.FLAVOR_CREATE, '2.1', {'flavor': {'name': 'x'}}) == (
        "Invalid input for field/attribute flavor. Value: {'name': 'x'}. "
        "'ram' is a required property")


def test_flavor_description_from_2_55():
    bad(schemas.FLAVOR_CREATE, '2.54', _flavor(description='d'))
    ok(schemas.FLAVOR_CREATE, '2.55', _flavor(description='d'))
    ok(schemas.FLAVOR_CREATE, '2.55', _flavor(description=None))


# -- query strings ------------------------------------------------------------

def _query(versioned, version, params):
    schemas.validate(_schema(versioned, version), params, is_body=False)


def test_limit_must_be_a_non_negative_integer():
    _query(schemas.SERVER_INDEX_QUERY, '2.1', {'limit': ['0']})
    with pytest.raises(exception.Invalid) as e:
        _query(schemas.SERVER_INDEX_QUERY, '2.1', {'limit': ['-1']})
    assert e.value.format_message() == (
        "Invalid input for query parameters limit. Value: -1. '-1' does not "
        "match '^[0-9]*$'")


def test_unknown_query_parameters_rejected_from_2_75():
    for versioned in (schemas.SERVER_INDEX_QUERY, schemas.FLAVOR_INDEX_QUERY):
        _query(versioned, '2.74', {'foo': ['1']})
        with pytest.raises(exception.Invalid) as e:
            _query(versioned, '2.75', {'foo': ['1']})
        assert e.value.format_message() == (
            "Additional properties are not allowed ('foo' was unexpected)")
    _query(schemas.SERVER_INDEX_QUERY, '2.75',
           {'name': ['^vm'], 'status': ['ACTIVE'], 'marker': ['x']})


def test_flavor_sort_keys():
    _query(schemas.FLAVOR_INDEX_QUERY, '2.1', {'sort_key': ['memory_mb'],
                                               'sort_dir': ['desc']})
    with pytest.raises(exception.Invalid):
        _query(schemas.FLAVOR_INDEX_QUERY, '2.1', {'sort_key': ['colour']})
