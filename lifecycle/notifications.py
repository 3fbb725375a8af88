"""Versioned notifications of instance actions, in Nova's style.

The compute hosts send ``instance.<action>.start`` before an action,
``instance.<action>.end`` after it and ``instance.<action>.error`` (priority
ERROR) when it fails, through oslo.messaging's Notifier with publisher id
``lifecycle-compute:<host>``, to the topics of ``[notifications]
versioned_notifications_topics``. Actions: ``create`` (build),
``shelve``, ``shelve_offload``, ``unshelve``, ``delete``; inside a
hibernate-shelve ``hibernate`` (the memory saved) and inside the unshelve
of a hibernated server ``hibernate_resume`` (the memory restored; its
``.error`` carries why the guest was booted cold instead).

They are off unless ``[oslo_messaging_notifications] driver`` is set
(``messagingv2`` to a message bus; ``[oslo_messaging_notifications]
transport_url``, default the RPC ``transport_url``, says which), exactly as
in Nova; with no driver nothing is built or sent.

The payload is a versioned object document as Nova's
``InstanceActionPayload``: ``nova_object.name``, ``.namespace``
(``lifecycle``), ``.version`` and ``.data``, whose data carries the
instance (uuid, display_name, host, node, state, task_state, power_state,
flavor as a ``FlavorPayload``, owner, times, metadata), the request's
initiator and, beyond Nova, ``offload_mode`` (``full`` once the disk is an
image, ``partial`` while a retained disk is recorded, else ``[shelve]
offload_mode``) and ``storage_group``; ``.error`` adds ``fault``
(an ``ExceptionPayload``). A notification that cannot be built or sent is
logged and never fails the action.
"""

import contextlib
import threading
import traceback
from collections.abc import Iterator

import oslo_messaging as messaging
from oslo_config import cfg
from oslo_log import log as logging

from lifecycle import exception
from lifecycle import states
from lifecycle.conf import CONF
from lifecycle import names

LOG = logging.getLogger(__name__)

NAMESPACE = 'lifecycle'
# 1.1: memory_state
PAYLOAD_VERSION = '1.1'
PUBLISHER = 'lifecycle-compute'
ACTIONS = ('create', 'shelve', 'shelve_offload', 'unshelve', 'delete',
           'hibernate', 'hibernate_resume')
# Nova's power_state names in versioned payloads.
_POWER_STATES = {states.NOSTATE: 'pending', states.RUNNING: 'running',
                 states.PAUSED: 'paused', states.SHUTDOWN: 'shutdown',
                 states.CRASHED: 'crashed', states.SUSPENDED: 'suspended'}

class _ContextSerializer(messaging.NoOpSerializer):
    """The request context travels as its dict (oslo.messaging hands a
    redacted copy of the context object; a bare dict becomes {})."""

    def serialize_context(self, ctxt):
        return ctxt.to_dict() if hasattr(ctxt, 'to_dict') else dict(
            ctxt or {})


_lock = threading.Lock()
_transports: dict[str, messaging.Transport] = {}
_notifiers: dict[tuple, messaging.Notifier] = {}


def enabled(conf: cfg.ConfigOpts = CONF) -> bool:
    drivers = conf.oslo_messaging_notifications.driver
    return any(d != 'noop' for d in drivers or ())


def _transport_url(conf: cfg.ConfigOpts) -> str:
    return (conf.oslo_messaging_notifications.transport_url or
            conf.transport_url or '')


def get_transport(conf: cfg.ConfigOpts = CONF) -> messaging.Transport:
    """The notification transport of the current configuration, one per
    URL and process (a ``inproc://`` listener must share it to hear)."""
    url = _transport_url(conf)
    with _lock:
        transport = _transports.get(url)
        if transport is None:
            transport = messaging.get_notification_transport(conf)
            _transports[url] = transport
        return transport


def get_notifier(host: str,
                 conf: cfg.ConfigOpts = CONF) -> messaging.Notifier:
    key = (_transport_url(conf), host,
           tuple(conf.oslo_messaging_notifications.driver),
           tuple(conf.notifications.versioned_notifications_topics))
    transport = get_transport(conf)
    with _lock:
        notifier = _notifiers.get(key)
        if notifier is None:
            notifier = messaging.Notifier(
                transport, publisher_id='%s:%s' % (PUBLISHER, host),
                topics=conf.notifications.versioned_notifications_topics,
                serializer=_ContextSerializer())
            _notifiers[key] = notifier
        return notifier


def reset() -> None:
    """Forget the notifiers and close their transports (tests, reload)."""
    with _lock:
        transports = list(_transports.values())
        _transports.clear()
        _notifiers.clear()
    for transport in transports:
        transport.cleanup()


# -- payloads -----------------------------------------------------------------

def _object(name: str, data: dict, version: str = PAYLOAD_VERSION) -> dict:
    return {'nova_object.name': name, 'nova_object.namespace': NAMESPACE,
            'nova_object.version': version, 'nova_object.data': data}


def _time(value) -> str | None:
    return value.strftime('%Y-%m-%dT%H:%M:%SZ') if value else None


def _offload_mode(sysmeta: dict) -> str:
    """How the instance is offloaded: ``full`` once its disk is an image,
    ``partial`` while a retained disk is recorded, otherwise how it would
    be (``[shelve] offload_mode``)."""
    if sysmeta.get(names.SHELVED_IMAGE_ID):
        return 'full'
    if sysmeta.get(names.SHELVED_DISK):
        return 'partial'
    try:
        return CONF.shelve.offload_mode
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        return 'partial'


def _storage_group(db, instance, host: str) -> str | None:
    sysmeta = instance.system_metadata
    if sysmeta.get(names.SHELVED_STORAGE_GROUP):
        return sysmeta[names.SHELVED_STORAGE_GROUP]
    if sysmeta.get(names.SHELVED_IMAGE_ID) and not instance.host:
        return None  # fully offloaded: the disk is in no group
    try:
        return db.storage_group_of_host(instance.host or host)
    except Exception:  # several groups: report none
        return None


def exception_payload(exc: BaseException) -> dict:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    module = None
    if last is not None:
        module = last.filename.rsplit('/', 1)[-1].removesuffix('.py')
    return _object('ExceptionPayload', {
        'exception': type(exc).__name__,
        'exception_message': exception.message_of(exc),
        'function_name': last.name if last else None,
        'module_name': module,
        'traceback': ''.join(traceback.format_exception(exc)),
    }, version='1.1')


def instance_payload(db, instance_uuid: str, host: str, context=None,
                     fault: BaseException | None = None,
                     instance=None) -> dict:
    """``InstanceActionPayload`` of ``instance`` (the row an action
    committed) or, without it, of the instance as the database has it now
    (soft-deleted rows included, for ``delete.end``)."""
    if instance is None:
        instance = db.instance_get(instance_uuid, read_deleted=True)
    sysmeta = instance.system_metadata
    flavor = _object('FlavorPayload', {
        'flavorid': instance.flavorid, 'name': instance.flavor_name,
        'vcpus': instance.vcpus, 'memory_mb': instance.memory_mb,
        'root_gb': instance.root_gb}, version='1.4')
    return _object('InstanceActionPayload', {
        'uuid': instance.uuid,
        'display_name': instance.display_name,
        'user_id': instance.user_id,
        'tenant_id': instance.project_id,
        'host': instance.host,
        'node': instance.host,
        'availability_zone': instance.availability_zone,
        'image_uuid': instance.image_ref,
        'state': instance.vm_state,
        'task_state': instance.task_state,
        'power_state': _POWER_STATES.get(instance.power_state, 'pending'),
        'flavor': flavor,
        'metadata': instance.metadata_dict,
        'created_at': _time(instance.created_at),
        'updated_at': _time(instance.updated_at),
        'launched_at': _time(instance.launched_at),
        'terminated_at': _time(instance.terminated_at),
        'deleted_at': _time(instance.deleted_at),
        'action_initiator_user': getattr(context, 'user_id', None),
        'action_initiator_project': getattr(context, 'project_id', None),
        'request_id': getattr(context, 'request_id', None),
        'offload_mode': _offload_mode(sysmeta),
        'storage_group': _storage_group(db, instance, host),
        names.SHELVED_AT: sysmeta.get(names.SHELVED_AT),
        names.SHELVED_HOST: sysmeta.get(names.SHELVED_HOST),
        'retained_disk': sysmeta.get(names.SHELVED_DISK),
        'memory_state': sysmeta.get(names.SHELVED_MEMORY_STATE),
        'fault': exception_payload(fault) if fault is not None else None,
    })


def notify(db, host: str, context, instance_uuid: str, action: str,
           phase: str, fault: BaseException | None = None,
           instance=None) -> None:
    """Send ``instance.<action>.<phase>``; failures are only logged."""
    event_type = 'instance.%s.%s' % (action, phase)
    try:
        payload = instance_payload(db, instance_uuid, host, context, fault,
                                   instance)
        notifier = get_notifier(host)
        if phase == 'error':
            notifier.error(context, event_type, payload)
        else:
            notifier.info(context, event_type, payload)
    except Exception:  # never fail the action
        LOG.warning('Could not send %s for instance %s', event_type,
                    instance_uuid, exc_info=True)


class ActionRecord:
    """What an action block hands to its ``end`` notification: the
    instance row as the action's last update committed it. Without it the
    row is read again, and a request that follows the action at once (the
    API answers as soon as the state is committed) could already show."""

    instance = None


@contextlib.contextmanager
def instance_action(manager, context, instance_uuid: str,
                    action: str) -> Iterator[ActionRecord]:
    """``start`` before the block, ``end`` after it, ``error`` (then the
    exception goes on) when it raises; ``manager`` gives ``db`` and
    ``host``. Does nothing when notifications are off."""
    record = ActionRecord()
    if not enabled():
        yield record
        return
    notify(manager.db, manager.host, context, instance_uuid, action,
           'start')
    try:
        yield record
    except Exception as e:
        notify(manager.db, manager.host, context, instance_uuid, action,
               'error', fault=e)
        raise
    notify(manager.db, manager.host, context, instance_uuid, action, 'end',
           instance=record.instance)
