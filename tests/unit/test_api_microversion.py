"""Microversion parsing and negotiation, response headers and the shape of
error responses, as Nova answers them."""

import json

import pytest
import webob

from lifecycle import exception
from lifecycle.api import auth
from lifecycle.api import wsgi
from lifecycle.conf import CONF

V = wsgi.APIVersion


# -- APIVersion ---------------------------------------------------------------

@pytest.mark.parametrize('text', ['2.1', '2.0', '2.91', '10.100', '3.0'])
def test_version_parses(text):
    assert str(V(text)) == text


@pytest.mark.parametrize('text', ['2', '2.', '.1', '2.01', '02.1', 'v2.1',
                                  '2.1.1', '', ' 2.1', 'latest', '2.x'])
def test_version_rejects_malformed(text):
    with pytest.raises(wsgi.Fault) as e:
        V(text)
    assert e.value.code == 400
    assert e.value.message == (
        'API Version String %s is of invalid format. Must be of format '
        'MajorNum.MinorNum.' % text)


def test_version_order_is_numeric_not_lexical():
    assert V('2.10') > V('2.9')
    assert V('2.9') < '2.10'
    assert V('2.47') >= '2.47'
    assert V('3.0') > V('2.91')
    assert V('2.5') == V('2.5') == '2.5'
    assert len({V('2.5'), V('2.5')}) == 1


# -- which version a request asks for -----------------------------------------

@pytest.mark.parametrize('headers, expected', [
    ({}, None),
    ({'OpenStack-API-Version': 'compute 2.5'}, '2.5'),
    ({'OpenStack-API-Version': 'COMPUTE 2.5'}, '2.5'),
    ({'OpenStack-API-Version': 'compute latest'}, 'latest'),
    ({'OpenStack-API-Version': 'volume 3.2, compute 2.7'}, '2.7'),
    ({'OpenStack-API-Version': 'compute 2.3, compute 2.7'}, '2.7'),
    ({'OpenStack-API-Version': 'volume 3.2'}, None),
    ({'X-OpenStack-Nova-API-Version': '2.11'}, '2.11'),
    ({'X-OpenStack-Nova-API-Version': '2.3, 2.11'}, '2.11'),
    ({'OpenStack-API-Version': 'compute 2.5',
      'X-OpenStack-Nova-API-Version': '2.11'}, '2.5'),
    ({'OpenStack-API-Version': 'volume 3.2',
      'X-OpenStack-Nova-API-Version': '2.11'}, '2.11'),
])
def test_requested_version(headers, expected):
    assert wsgi.requested_version(webob.Request.blank(
        '/', headers=headers).headers) == expected


def _negotiate(value, header='OpenStack-API-Version'):
    if header == 'OpenStack-API-Version':
        value = 'compute ' + value
    return wsgi.negotiate(webob.Request.blank(
        '/', headers={header: value}).headers)


def test_no_header_means_the_minimum():
    assert wsgi.negotiate(webob.Request.blank('/').headers) == '2.1'


def test_latest_means_the_maximum():
    assert _negotiate('latest') == wsgi.MAX_VERSION == '2.91'
    assert _negotiate('latest', 'X-OpenStack-Nova-API-Version') == '2.91'


@pytest.mark.parametrize('value', ['2.1', '2.37', '2.77', '2.91'])
def test_versions_in_range_are_served(value):
    assert str(_negotiate(value)) == value


@pytest.mark.parametrize('value', ['2.0', '2.92', '3.0', '1.1', '2.200'])
def test_versions_out_of_range_are_not_acceptable(value):
    with pytest.raises(wsgi.Fault) as e:
        _negotiate(value)
    assert e.value.code == 406
    assert e.value.message == (
        'Version %s is not supported by the API. Minimum is 2.1 and maximum '
        'is 2.91.' % value)
    assert e.value.version == value


def test_malformed_version_is_a_bad_request():
    with pytest.raises(wsgi.Fault) as e:
        _negotiate('2.x')
    assert e.value.code == 400
    with pytest.raises(wsgi.Fault):
        _negotiate('Latest')  # the keyword is case-sensitive, as in Nova


# -- through the application --------------------------------------------------

def _app(handler=None):
    router = wsgi.Router('/v2.1')
    router.connect('/', 'GET', lambda req: {'root': True}, versioned=False,
                   absolute=True)
    router.connect('/thing', 'GET',
                   handler or (lambda req: {'version': str(req.api_version),
                                            'project': req.context.project_id,
                                            'user': req.context.user_id}))
    router.connect('/thing', 'POST', lambda req, body: wsgi.Result(
        {'got': body}, 202, {'Location': 'http://x/thing/1'}))
    router.connect('/thing/{id}', 'DELETE',
                   lambda req, id: wsgi.Result(None, 204))
    return auth.NoAuth2(router)


def _get(app, path='/v2.1/thing', method='GET', body=None, headers=None):
    req = webob.Request.blank(path, method=method, headers=headers or {})
    if body is not None:
        req.body = body if isinstance(body, bytes) else json.dumps(
            body).encode()
        req.content_type = 'application/json'
    return req.get_response(app)


def test_response_carries_version_headers():
    resp = _get(_app(), headers={'OpenStack-API-Version': 'compute 2.47'})
    assert resp.status_int == 200
    assert resp.json['version'] == '2.47'
    assert resp.headers['OpenStack-API-Version'] == 'compute 2.47'
    assert resp.headers['X-OpenStack-Nova-API-Version'] == '2.47'
    assert resp.headers.getall('Vary') == ['OpenStack-API-Version',
                                           'X-OpenStack-Nova-API-Version']
    assert resp.headers['x-openstack-request-id'].startswith('req-')
    assert resp.content_type == 'application/json'


def test_default_version_is_announced():
    resp = _get(_app())
    assert resp.json['version'] == '2.1'
    assert resp.headers['OpenStack-API-Version'] == 'compute 2.1'


def test_legacy_header_is_honoured():
    resp = _get(_app(), headers={'X-OpenStack-Nova-API-Version': '2.60'})
    assert resp.json['version'] == '2.60'


def test_root_is_not_under_microversion_control():
    resp = _get(_app(), '/', headers={'OpenStack-API-Version':
                                      'compute 9.9'})
    assert resp.status_int == 200
    assert 'OpenStack-API-Version' not in resp.headers


def test_out_of_range_version_is_406_with_nova_body_and_headers():
    resp = _get(_app(), headers={'OpenStack-API-Version': 'compute 2.92'})
    assert resp.status_int == 406
    assert resp.json == {'computeFault': {
        'code': 406,
        'message': 'Version 2.92 is not supported by the API. Minimum is 2.1 '
                   'and maximum is 2.91.'}}
    assert resp.headers['OpenStack-API-Version'] == 'compute 2.92'


def test_malformed_version_is_400_without_version_headers():
    resp = _get(_app(), headers={'OpenStack-API-Version': 'compute two'})
    assert resp.status_int == 400
    assert list(resp.json) == ['badRequest']
    assert 'OpenStack-API-Version' not in resp.headers


def test_noauth2_context_with_admin_default():
    """Nova's noauth2: USER:PROJECT tokens; no token (or keystoneauth1's
    ``notused`` of auth_type none) is the admin of project admin; the
    identity headers a caller sends are not believed."""
    assert _get(_app()).json['project'] == 'admin'
    resp = _get(_app(), headers={'X-Auth-Token': 'notused'})
    assert (resp.json['user'], resp.json['project']) == ('admin', 'admin')
    resp = _get(_app(), headers={'X-Auth-Token': 'u1:p1'})
    assert (resp.json['user'], resp.json['project']) == ('u1', 'p1')
    resp = _get(_app(), headers={'X-Auth-Token': 'u2'})
    assert (resp.json['user'], resp.json['project']) == ('u2', 'u2')
    resp = _get(_app(), headers={'X-User-Id': 'u1', 'X-Project-Id': 'p1'})
    assert (resp.json['user'], resp.json['project']) == ('admin', 'admin')


def test_router_without_authentication_refuses():
    resp = _get(_app().application)
    assert resp.status_int == 401
    assert resp.json['unauthorized']['code'] == 401


def test_project_id_in_url_is_accepted_and_checked():
    assert _get(_app(), '/v2.1/abc123/thing').json['project'] == 'abc123'
    resp = _get(_app(), '/v2.1/abc123/thing', headers={'X-Auth-Token': 'u:ff'})
    assert resp.status_int == 400
    assert "doesn't match Context's project_id" in (
        resp.json['badRequest']['message'])


def test_created_and_no_content_results():
    resp = _get(_app(), method='POST', body={'a': 1})
    assert resp.status_int == 202
    assert resp.json == {'got': {'a': 1}}
    assert resp.headers['Location'] == 'http://x/thing/1'
    resp = _get(_app(), '/v2.1/thing/1', method='DELETE')
    assert resp.status_int == 204
    assert resp.body == b''


# -- error shapes -------------------------------------------------------------

@pytest.mark.parametrize('code, name', [
    (400, 'badRequest'), (403, 'forbidden'), (404, 'itemNotFound'),
    (409, 'conflictingRequest'), (413, 'overLimit'), (500, 'computeFault'),
    (406, 'computeFault'), (503, 'serviceUnavailable')])
def test_fault_names(code, name):
    assert wsgi.fault_body(code, 'm') == {name: {'code': code,
                                                 'message': 'm'}}


@pytest.mark.parametrize('exc, code, message', [
    (exception.InvalidInput(reason='bad'), 400,
     'Invalid input received: bad'),
    (exception.Invalid('plain message'), 400, 'plain message'),
    (exception.InstanceNotFound(instance_id='x'), 404,
     'Instance x could not be found.'),
    (exception.FlavorExists(key='name', value='m1'), 409,
     'Flavor with name m1 already exists.'),
    (exception.InstanceInvalidState(action='shelve', instance_uuid='u',
                                    attr='vm_state', state='error'), 409,
     "Cannot 'shelve' instance u while it is in vm_state error"),
    (exception.NoValidHost(reason='full'), 500,
     'No valid host was found. full'),
])
def test_lifecycle_exceptions_map_to_codes(exc, code, message):
    fault = wsgi.fault_from_exception(exc)
    assert (fault.code, fault.message) == (code, message)


def _failing(exc):
    def handler(req):
        raise exc
    return _app(handler)


def test_unexpected_error_is_500_without_traceback():
    resp = _get(_failing(RuntimeError('secret /etc/path detail')))
    assert resp.status_int == 500
    message = resp.json['computeFault']['message']
    assert message.startswith('Unexpected API Error.')
    assert "<class 'RuntimeError'>" in message
    assert 'secret' not in resp.text
    assert 'Traceback' not in resp.text
    assert resp.headers['OpenStack-API-Version'] == 'compute 2.1'


def test_not_found_exception_is_item_not_found():
    resp = _get(_failing(exception.ImageNotFound(image_id='i')))
    assert resp.status_int == 404
    assert resp.json == {'itemNotFound': {
        'code': 404, 'message': 'Image i could not be found.'}}


def test_conflict_for_state_uses_nova_wording():
    exc = exception.InstanceInvalidState(action='x', instance_uuid='u',
                                         attr='task_state', state=None)
    fault = wsgi.conflict_for_state(exc, 'unshelve', 'u')
    assert fault.code == 409
    assert fault.message == ("Cannot 'unshelve' instance u while it is in "
                             "task_state None")
    fault = wsgi.conflict_for_state(exception.InstanceInvalidState(
        'no kwargs'), 'stop', 'u')
    assert fault.message == "Instance u is in an invalid state for 'stop'"


def test_malformed_json_is_400():
    resp = _get(_app(), method='POST', body=b'{"a": ')
    assert resp.status_int == 400
    assert resp.json == {'badRequest': {'code': 400,
                                        'message': 'Malformed request body'}}


def test_empty_body_reaches_the_handler_as_none():
    resp = _get(_app(), method='POST', body=b'')
    assert resp.json == {'got': None}


def test_unknown_path_and_method_are_404():
    for path, method in (('/v2.1/nothing', 'GET'), ('/v2.1/thing', 'PUT'),
                         ('/v3/thing', 'GET')):
        resp = _get(_app(), path, method=method)
        assert resp.status_int == 404
        assert resp.json == {'itemNotFound': {
            'code': 404, 'message': 'The resource could not be found.'}}


def test_body_over_the_limit_is_413():
    CONF.set_override('max_request_body_size', 64, group='api')
    try:
        resp = _get(_app(), method='POST', body={'a': 'x' * 100})
    finally:
        CONF.clear_override('max_request_body_size', group='api')
    assert resp.status_int == 413
    assert resp.json == {'overLimit': {
        'code': 413, 'message': 'Request is too large. Larger than '
                                'max_request_body_size (64).'}}
    assert _get(_app(), method='POST', body={'a': 'x' * 100}).status_int == 202


def test_non_json_content_type_is_415():
    req = webob.Request.blank('/v2.1/thing', method='POST', body=b'a=1')
    req.content_type = 'application/x-www-form-urlencoded'
    resp = req.get_response(_app())
    assert resp.status_int == 415
    assert resp.json == {'badMediaType': {
        'code': 415, 'message': 'Unsupported Content-Type'}}
    req.content_type = 'text/plain'
    req.body = b'{"a": 1}'
    assert req.get_response(_app()).json == {'got': {'a': 1}}
