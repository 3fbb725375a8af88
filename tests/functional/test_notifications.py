"""Versioned notifications of a whole boot → shelve → unshelve → delete
cycle, heard by a real oslo.messaging notification listener: on the
all-in-one's ``inproc://`` transport, and on RabbitMQ (required under
CI=true)."""

import os
import threading
import time
import uuid

import oslo_messaging as messaging
import pytest

from lifecycle import notifications
from lifecycle.conf import CONF
from tests.conftest import require
from tests.functional.conftest import disk_of
from tests.harness.rabbit import RABBIT_URL
from tests.harness.rabbit import rabbit_usable


CYCLE = ['instance.create.start', 'instance.create.end',
         'instance.shelve.start', 'instance.shelve.end',
         'instance.shelve_offload.start', 'instance.shelve_offload.end',
         'instance.unshelve.start', 'instance.unshelve.end',
         'instance.delete.start', 'instance.delete.end']


class Collector:
    """A notification endpoint that keeps what it hears."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self._cond = threading.Condition()

    def _record(self, priority, ctxt, publisher_id, event_type, payload,
                metadata):
        with self._cond:
            self.events.append({'priority': priority, 'ctxt': ctxt,
                                'publisher_id': publisher_id,
                                'event_type': event_type,
                                'payload': payload})
            self._cond.notify_all()

    def info(self, *args):
        self._record('info', *args)

    def error(self, *args):
        self._record('error', *args)

    def of(self, instance_uuid: str) -> list[dict]:
        with self._cond:
            return [e for e in self.events
                    if e['payload']['nova_object.data']['uuid'] ==
                    instance_uuid]

    def wait_for(self, instance_uuid: str, event_type: str,
                 timeout: float = 30, count: int = 1) -> list[dict]:
        """Until ``count`` notifications of the type have arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while [e['event_type'] for e in self.of(instance_uuid)
                   ].count(event_type) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, 'no %s for %s; heard %s' % (
                    event_type, instance_uuid,
                    [e['event_type'] for e in self.of(instance_uuid)])
                self._cond.wait(remaining)
            return self.of(instance_uuid)


@pytest.fixture
def listen():
    """``listen(transport, topic)`` starts a listener; all are stopped at
    the end, then the notifiers' transports are closed."""
    listeners = []
    owned = []

    def start(transport, topic, own_transport=False):
        if own_transport:
            owned.append(transport)
        collector = Collector()
        listener = messaging.get_notification_listener(
            transport, [messaging.Target(topic=topic)], [collector],
            executor='threading')
        listener.start()
        listeners.append(listener)
        return collector

    yield start
    for listener in listeners:
        listener.stop()
        listener.wait()
    for transport in owned:
        transport.cleanup()
    notifications.reset()


def _settings(topic: str, more: dict | None = None) -> dict:
    extra = {('oslo_messaging_notifications', 'driver'): ['messagingv2'],
             ('notifications', 'versioned_notifications_topics'): [topic]}
    extra.update(more or {})
    return extra


def _data(event: dict) -> dict:
    return event['payload']['nova_object.data']


def _cycle(aio, client, collector) -> str:
    server_id = client.boot('noisy', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    assert client.action(server_id, {'shelve': None})[0] == 202
    client.wait(server_id, 'SHELVED_OFFLOADED')
    assert client.action(server_id, {'unshelve': None})[0] == 202
    client.wait(server_id, 'ACTIVE')
    assert client.request('DELETE', '/servers/%s' % server_id)[0] == 204
    collector.wait_for(server_id, 'instance.delete.end')
    return server_id


def _check_cycle(collector, server_id) -> None:
    events = collector.of(server_id)
    assert [e['event_type'] for e in events] == CYCLE
    assert {e['priority'] for e in events} == {'info'}
    assert {e['publisher_id'] for e in events} == {
        'lifecycle-compute:host-a1'}
    by_type = {e['event_type']: e for e in events}
    for event in events:
        payload = event['payload']
        assert payload['nova_object.name'] == 'InstanceActionPayload'
        assert payload['nova_object.namespace'] == 'lifecycle'
        assert payload['nova_object.version'] == '1.1'
        data = _data(event)
        assert data['display_name'] == 'noisy'
        assert data['offload_mode'] == 'partial'
        assert data['storage_group'] == 'group-a'
        flavor = data['flavor']
        assert flavor['nova_object.name'] == 'FlavorPayload'
        assert flavor['nova_object.data']['vcpus'] == 1
        assert flavor['nova_object.data']['memory_mb'] == 512
        assert data['fault'] is None
        assert data['memory_state'] is None

    assert _data(by_type['instance.create.start'])['task_state'] == \
        'spawning'
    end = _data(by_type['instance.create.end'])
    assert (end['state'], end['task_state'], end['power_state'],
            end['host']) == ('active', None, 'running', 'host-a1')
    assert _data(by_type['instance.shelve.start'])['task_state'] == \
        'shelving'
    end = _data(by_type['instance.shelve.end'])
    assert (end['state'], end['power_state']) == ('shelved', 'shutdown')
    assert end['shelved_host'] == 'host-a1'
    end = _data(by_type['instance.shelve_offload.end'])
    assert (end['state'], end['task_state'], end['host']) == (
        'shelved_offloaded', None, None)
    assert end['retained_disk'] == '%s/disk' % server_id
    start = _data(by_type['instance.unshelve.start'])
    assert (start['state'], start['task_state']) == ('shelved_offloaded',
                                                     'unshelving')
    end = _data(by_type['instance.unshelve.end'])
    assert (end['state'], end['host'], end['retained_disk']) == (
        'active', 'host-a1', None)
    end = _data(by_type['instance.delete.end'])
    assert end['state'] == 'deleted' and end['deleted_at']


def test_cycle_on_the_in_process_transport(make_aio, client_for, listen):
    topic = 'lc-notify-%s' % uuid.uuid4().hex[:8]
    aio = make_aio(extra=_settings(topic))
    # inproc:// delivers only inside the process: listen on the
    # one the notifiers use.
    collector = listen(notifications.get_transport(), topic)
    client = client_for(aio.url)
    server_id = _cycle(aio, client, collector)
    _check_cycle(collector, server_id)
    event = collector.of(server_id)[0]
    assert event['ctxt']['project_id'] == \
        _data(event)['action_initiator_project']


def test_full_offload_is_a_second_shelve_offload(make_aio, client_for,
                                                 listen):
    topic = 'lc-notify-%s' % uuid.uuid4().hex[:8]
    aio = make_aio(extra=_settings(topic, {('shelve', 'offload_mode'):
                                           'full'}))
    collector = listen(notifications.get_transport(), topic)
    client = client_for(aio.url)
    server_id = client.boot('full', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED_OFFLOADED')
    deadline = time.monotonic() + 30
    while [e['event_type'] for e in collector.of(server_id)].count(
            'instance.shelve_offload.end') < 2:
        assert time.monotonic() < deadline, collector.of(server_id)
        time.sleep(0.05)
    offload = [e for e in collector.of(server_id)
               if e['event_type'].startswith('instance.shelve_offload.')]
    assert [e['event_type'].rsplit('.', 1)[1] for e in offload] == [
        'start', 'end', 'start', 'end']
    # Partially offloaded first (the disk retained in group-a), then the
    # disk is an image and in no group.
    assert [(_data(e)['offload_mode'], _data(e)['storage_group'])
            for e in offload] == [('full', 'group-a'), ('partial', 'group-a'),
                                  ('partial', 'group-a'), ('full', None)]
    assert _data(offload[-1])['retained_disk'] is None


def test_failed_unshelve_sends_error_with_the_fault(make_aio, client_for,
                                                   listen):
    topic = 'lc-notify-%s' % uuid.uuid4().hex[:8]
    aio = make_aio(extra=_settings(topic))
    collector = listen(notifications.get_transport(), topic)
    client = client_for(aio.url)
    server_id = client.boot('doomed', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED_OFFLOADED')
    os.unlink(disk_of(aio, server_id))
    client.action(server_id, {'unshelve': None})
    errors = []
    deadline = time.monotonic() + 30
    # Each host of the group is tried: one error per host.
    while len(errors) < 2:
        assert time.monotonic() < deadline, collector.of(server_id)
        errors = [e for e in collector.of(server_id)
                  if e['event_type'] == 'instance.unshelve.error']
        time.sleep(0.05)
    assert {e['priority'] for e in errors} == {'error'}
    assert {e['publisher_id'] for e in errors} == {
        'lifecycle-compute:host-a1', 'lifecycle-compute:host-a2'}
    fault = _data(errors[0])['fault']
    assert fault['nova_object.name'] == 'ExceptionPayload'
    assert fault['nova_object.data']['exception'] == 'RetainedDiskNotFound'
    assert server_id in fault['nova_object.data']['exception_message']


def test_hibernate_and_resume_inside_shelve_and_unshelve(
        make_aio, client_for, listen):
    topic = 'lc-notify-%s' % uuid.uuid4().hex[:8]
    aio = make_aio(extra=_settings(topic))
    collector = listen(notifications.get_transport(), topic)
    client = client_for(aio.url)
    server_id = client.boot('sleepy', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    assert client.action(server_id, {'shelve': {
        'lifecycle:keep_memory': True}})[0] == 202
    client.wait(server_id, 'SHELVED_OFFLOADED')
    assert client.action(server_id, {'unshelve': None})[0] == 202
    client.wait(server_id, 'ACTIVE')
    collector.wait_for(server_id, 'instance.unshelve.end')
    events = collector.of(server_id)
    assert [e['event_type'] for e in events] == [
        'instance.create.start', 'instance.create.end',
        'instance.shelve.start',
        'instance.hibernate.start', 'instance.hibernate.end',
        'instance.shelve.end',
        'instance.shelve_offload.start', 'instance.shelve_offload.end',
        'instance.unshelve.start',
        'instance.hibernate_resume.start', 'instance.hibernate_resume.end',
        'instance.unshelve.end']
    by_type = {e['event_type']: _data(e) for e in events}
    location = '%s/memory.save' % server_id
    assert by_type['instance.hibernate.start']['memory_state'] is None
    assert by_type['instance.shelve.end']['memory_state'] == location
    assert by_type['instance.shelve_offload.end']['memory_state'] == location
    assert by_type['instance.hibernate_resume.start']['memory_state'] == \
        location
    assert by_type['instance.unshelve.end']['memory_state'] is None

    # A state that cannot be restored: .error with the reason, then the
    # unshelve ends (the guest booted cold).
    assert client.action(server_id, {'shelve': {
        'lifecycle:keep_memory': True}})[0] == 202
    client.wait(server_id, 'SHELVED_OFFLOADED')
    os.unlink(os.path.join(aio.storage_path('group-a'), location))
    assert client.action(server_id, {'unshelve': None})[0] == 202
    client.wait(server_id, 'ACTIVE')
    collector.wait_for(server_id, 'instance.hibernate_resume.error')
    # The server is ACTIVE before its unshelve.end is sent.
    collector.wait_for(server_id, 'instance.unshelve.end', count=2)
    error = [e for e in collector.of(server_id)
             if e['event_type'] == 'instance.hibernate_resume.error'][0]
    assert error['priority'] == 'error'
    fault = _data(error)['fault']['nova_object.data']
    assert fault['exception'] == 'SavedStateUnusable'
    assert 'the file is missing' in fault['exception_message']
    ends = [e['event_type'] for e in collector.of(server_id)]
    assert ends.count('instance.unshelve.end') == 2


def test_off_by_default(make_aio, client_for, listen):
    assert CONF.oslo_messaging_notifications.driver == []
    aio = make_aio()
    assert not notifications.enabled()
    collector = listen(notifications.get_transport(),
                       'versioned_notifications')
    client = client_for(aio.url)
    server_id = client.boot('quiet', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED_OFFLOADED')
    time.sleep(0.5)
    assert collector.events == []


def test_cycle_on_rabbitmq(make_aio, client_for, listen):
    require(rabbit_usable(RABBIT_URL), 'RabbitMQ at %s' % RABBIT_URL)
    topic = 'lc-notify-%s' % uuid.uuid4().hex[:8]
    # RPC stays in-process (inproc://); notifications go through RabbitMQ,
    # on a topic of this test only, to queues deleted after it.
    aio = make_aio(extra=_settings(topic, {
        ('oslo_messaging_notifications', 'transport_url'): RABBIT_URL,
        ('oslo_messaging_rabbit', 'amqp_auto_delete'): True}))
    # A listener on its own connection, as another service would be.
    listener_transport = messaging.get_notification_transport(CONF)
    assert listener_transport is not notifications.get_transport()
    collector = listen(listener_transport, topic, own_transport=True)
    client = client_for(aio.url)
    server_id = _cycle(aio, client, collector)
    _check_cycle(collector, server_id)
