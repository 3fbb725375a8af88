"""The all-in-one's inproc:// transport, through oslo.messaging's public
API: it builds on oslo.messaging's private fake driver, so these tests are
what catches a release that changed it."""

import threading
import time
import uuid

import oslo_messaging as messaging
import pytest
from lifecycle import deploy, rpc_inproc
from lifecycle.conf import CONF


class _Endpoint:
    target = messaging.Target(version='1.0')

    def __init__(self, name: str) -> None:
        self.name = name
        self.casts: list = []
        self.seen = threading.Event()

    def echo(self, ctxt, value):
        return {'server': self.name, 'value': value}

    def fail(self, ctxt):
        raise ValueError('refused by %s' % self.name)

    def remember(self, ctxt, value):
        self.casts.append(value)
        self.seen.set()


@pytest.fixture
def transport():
    transport = messaging.get_rpc_transport(CONF, url='inproc://')
    yield transport
    transport.cleanup()


@pytest.fixture
def serve(transport):
    servers = []

    def start(topic: str, name: str) -> _Endpoint:
        endpoint = _Endpoint(name)
        server = messaging.get_rpc_server(
            transport, messaging.Target(topic=topic, server=name),
            [endpoint], executor='threading',
            access_policy=messaging.DefaultRPCAccessPolicy)
        server.start()
        servers.append(server)
        return endpoint

    yield start
    for server in servers:
        server.stop()
        server.wait()


def _client(transport, topic, **kwargs):
    return messaging.get_rpc_client(
        transport, messaging.Target(topic=topic, **kwargs), timeout=10)


def test_the_driver_is_the_one_registered_for_the_scheme(transport):
    assert isinstance(transport._driver, rpc_inproc.InProcessDriver)


def test_call_reaches_the_named_server_and_returns(transport, serve):
    topic = 'inproc-%s' % uuid.uuid4().hex[:8]
    serve(topic, 'a')
    serve(topic, 'b')
    reply = _client(transport, topic, server='b').call({}, 'echo', value=7)
    assert reply == {'server': 'b', 'value': 7}


def test_a_raised_error_comes_back_to_the_caller(transport, serve):
    topic = 'inproc-%s' % uuid.uuid4().hex[:8]
    serve(topic, 'a')
    with pytest.raises(ValueError, match='refused by a'):
        _client(transport, topic, server='a').call({}, 'fail')


def test_cast_wakes_an_idle_listener(transport, serve):
    """The listener sleeps on its event, not on a timer: a cast sent after
    it has been idle a while is taken at once (fake:// looks every 50 ms;
    this is the case it cost). Checked by what was delivered, not timed."""
    topic = 'inproc-%s' % uuid.uuid4().hex[:8]
    endpoint = serve(topic, 'a')
    time.sleep(0.2)
    _client(transport, topic, server='a').cast({}, 'remember', value='x')
    assert endpoint.seen.wait(10)
    assert endpoint.casts == ['x']


def test_fanout_reaches_every_server(transport, serve):
    topic = 'inproc-%s' % uuid.uuid4().hex[:8]
    endpoints = [serve(topic, name) for name in ('a', 'b', 'c')]
    _client(transport, topic, fanout=True).cast({}, 'remember', value=1)
    for endpoint in endpoints:
        assert endpoint.seen.wait(10)
        assert endpoint.casts == [1]


def test_call_with_no_server_times_out(transport):
    topic = 'inproc-%s' % uuid.uuid4().hex[:8]
    client = messaging.get_rpc_client(
        transport, messaging.Target(topic=topic, server='nobody'),
        timeout=0.3)
    with pytest.raises(messaging.MessagingTimeout):
        client.call({}, 'echo', value=1)


def test_notifications_reach_a_listener_of_the_process():
    transport = messaging.get_notification_transport(CONF, url='inproc://')
    topic = 'inproc-notify-%s' % uuid.uuid4().hex[:8]
    heard = []
    arrived = threading.Event()

    class Endpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            heard.append((event_type, payload))
            arrived.set()

    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [Endpoint()],
        executor='threading')
    listener.start()
    try:
        notifier = messaging.Notifier(transport, 'test.host',
                                      driver='messaging', topics=[topic])
        notifier.info({}, 'instance.shelve.end', {'n': 1})
        assert arrived.wait(10)
        assert heard == [('instance.shelve.end', {'n': 1})]
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()


def test_a_stopped_server_leaves_no_wakeup_behind(transport):
    topic = 'inproc-%s' % uuid.uuid4().hex[:8]

    def registered() -> bool:
        return any(key[1] == topic for key in rpc_inproc._WAKEUPS._events)

    server = messaging.get_rpc_server(
        transport, messaging.Target(topic=topic, server='a'),
        [_Endpoint('a')], executor='threading',
        access_policy=messaging.DefaultRPCAccessPolicy)
    server.start()
    assert registered()
    server.stop()
    server.wait()
    assert not registered()


@pytest.mark.parametrize('url', ['inproc://', 'fake://'])
def test_separate_services_refuse_an_in_process_bus(url):
    CONF.set_override('transport_url', url)
    try:
        with pytest.raises(deploy.StartupError,
                           match='only services inside this process'):
            deploy.check_transport()
    finally:
        CONF.clear_override('transport_url')
