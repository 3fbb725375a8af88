"""Volumes and attachments from Cinder, over python-cinderclient (API v3).

The client speaks microversion 3.44: the attachments API of 3.27 (create,
show, update, delete) and ``complete`` of 3.44, the calls Nova's
``nova/volume/cinder.py`` makes for new-style attachments:

* ``attachment_create(volume, instance, connector=None)`` reserves the
  volume for the instance (status ``reserved``, no connection yet);
* ``attachment_update(attachment, connector)`` exports the volume to the
  host the connector describes and returns its ``connection_info``;
* ``attachment_complete(attachment)`` marks it ``attached`` (volume
  ``in-use``);
* ``attachment_delete(attachment)`` removes it (the volume goes back to
  ``available`` when it was its last).

The client is built from the ``[cinder]`` options with keystoneauth1's
loaders (session, auth plugin, adapter), as Nova builds its own: Keystone in
production, ``auth_type = none`` with ``endpoint_override`` for a noauth
Cinder. Results are plain dicts.
"""

import threading
import time
from collections.abc import Callable

from cinderclient import client as cinder_client
from cinderclient import exceptions as cinder_exc
from oslo_config import cfg
from oslo_log import log as logging

from lifecycle.conf import CONF
from lifecycle import context as lc_context
from lifecycle import ksa_client
from lifecycle import exception

LOG = logging.getLogger(__name__)

GROUP = 'cinder'
API_VERSION = '3.44'
# Statuses a volume passes through on its own after an attachment change.
TRANSIENT_STATUSES = frozenset({'attaching', 'detaching', 'reserved',
                                'creating', 'deleting'})


def _is_retriable(error: BaseException) -> bool:
    return ksa_client.is_transient(error, (cinder_exc.ConnectionError,))


def _to_dict(resource) -> dict:
    if isinstance(resource, dict):
        return dict(resource)
    return resource.to_dict()


class CinderAPI:
    """Volumes and attachments of the Cinder that ``[cinder]`` names.

    ``client`` (a python-cinderclient v3 client) replaces the one built from
    the options, for tests.
    """

    def __init__(self, conf: cfg.ConfigOpts | None = None,
                 client=None) -> None:
        self.conf = CONF if conf is None else conf
        self._lock = threading.Lock()
        self._client_obj = client
        self._client_given = client is not None
        self._loaded: tuple | None = None

    # -- the client ----------------------------------------------------------

    @property
    def configured(self) -> bool:
        return bool(self.conf[GROUP].auth_type)

    def _transport(self) -> ksa_client.Transport:
        """(session, auth, adapter) of ``[cinder]``, loaded once."""
        with self._lock:
            if self._loaded is None:
                self._loaded = ksa_client.load_transport(self.conf, GROUP)
            return self._loaded

    def _build_client(self, user_auth=None,
                      global_request_id: str | None = None):
        """A cinderclient v3 client as the service or, with ``user_auth``,
        as the caller of the current request (Nova's ``cinderclient()``)."""
        conf = self.conf
        if not self.configured:
            raise exception.VolumeServiceNotConfigured()
        transport = self._transport()
        session, auth, adapter = transport

        def failed(reason: str) -> Exception:
            return exception.VolumeServiceError(what='endpoint discovery',
                                             reason=reason)
        endpoint = ksa_client.find_endpoint(transport, failed)
        if not endpoint:
            raise failed(ksa_client.no_endpoint(
                GROUP, conf[GROUP].service_type, 'volume service'))
        LOG.debug('Cinder endpoint %s', endpoint)
        return cinder_client.Client(
            API_VERSION, session=session, auth=user_auth or auth,
            endpoint_override=endpoint, interface=adapter.interface,
            region_name=adapter.region_name,
            global_request_id=global_request_id)

    def _client(self):
        if not self._client_given:
            user_auth, global_id = lc_context.caller_auth(self.conf)
            if user_auth is not None or global_id:
                return self._build_client(user_auth, global_id)
        with self._lock:
            client = self._client_obj
        if client is None:
            client = self._build_client()
            with self._lock:
                if self._client_obj is None:
                    self._client_obj = client
                client = self._client_obj
        return client

    def _call(self, what: str, func: Callable, *args, retry: bool = True,
              not_found: Callable[[], Exception] | None = None):
        """``func(client, ...)``. Connection failures and 5xx are tried
        again ``[cinder] http_retries`` times when ``retry``; a 404 raises
        ``not_found()`` when given; a 400/409 raises InvalidVolume; the rest
        VolumeServiceError."""
        attempts = (self.conf[GROUP].http_retries if retry else 0) + 1
        try:
            return ksa_client.call_with_retries(
                'Volume service', what, attempts,
                lambda: func(self._client(), *args),
                lambda e: (_is_retriable(e) and not isinstance(
                    e, exception.VolumeServiceNotConfigured)))
        except cinder_exc.NotFound as e:
            if not_found is None:
                raise exception.VolumeServiceError(
                    what=what, reason=exception.describe(e)) from e
            raise not_found() from e
        except cinder_exc.ClientException as e:
            if getattr(e, 'code', None) in (400, 409):
                raise exception.InvalidVolume(
                    reason='%s: %s' % (what, e)) from e
            raise exception.VolumeServiceError(
                what=what, reason=exception.describe(e)) from e
        except exception.VolumeServiceNotConfigured:
            raise
        except Exception as e:
            raise exception.VolumeServiceError(
                what=what, reason=exception.describe(e)) from e

    # -- volumes -----------------------------------------------------------

    def get(self, volume_id: str) -> dict:
        """The volume (``status``, ``bootable``, ``attachments``, ...)."""
        return _to_dict(self._call(
            'show volume %s' % volume_id,
            lambda c: c.volumes.get(volume_id),
            not_found=lambda: exception.VolumeNotFound(volume_id=volume_id)))

    def check_boot_volume(self, volume_id: str) -> dict:
        """The volume, if an instance can boot from it now: ``available``
        and ``bootable`` (Nova's checks). InvalidVolume otherwise."""
        vol = self.get(volume_id)
        if vol.get('status') != 'available':
            raise exception.InvalidVolume(
                reason='volume %s has status %s; it must be available to '
                       'boot a server from it'
                       % (volume_id, vol.get('status')))
        if str(vol.get('bootable')).lower() != 'true':
            raise exception.InvalidVolume(
                reason='volume %s is not bootable' % volume_id)
        return vol

    def delete(self, volume_id: str) -> bool:
        """Delete the volume; False when it was already gone."""
        try:
            self._call('delete volume %s' % volume_id,
                       lambda c: c.volumes.delete(volume_id),
                       not_found=lambda: exception.VolumeNotFound(
                           volume_id=volume_id))
        except exception.VolumeNotFound:
            return False
        return True

    def wait_settled(self, volume_id: str, timeout: float) -> dict | None:
        """The volume once it is in no transient status (None when it is
        gone); VolumeServiceError when it stays transient ``timeout``
        seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                vol = self.get(volume_id)
            except exception.VolumeNotFound:
                return None
            if vol.get('status') not in TRANSIENT_STATUSES:
                return vol
            if time.monotonic() > deadline:
                raise exception.VolumeServiceError(
                    what='wait for volume %s' % volume_id,
                    reason='still %s after %d s' % (vol.get('status'),
                                                    timeout))
            time.sleep(0.2)

    # -- attachments -------------------------------------------------------

    def attachment_create(self, volume_id: str, instance_uuid: str,
                          connector: dict | None = None) -> dict:
        """A new attachment of ``volume_id`` to the instance: ``reserved``
        without connector, or exported to ``connector``'s host. Never
        repeated: a lost answer would leave an unrecorded attachment."""
        return _to_dict(self._call(
            'create attachment of volume %s' % volume_id,
            lambda c: c.attachments.create(volume_id, connector,
                                           instance_uuid),
            retry=False,
            not_found=lambda: exception.VolumeNotFound(volume_id=volume_id)))

    def attachment_get(self, attachment_id: str) -> dict:
        return _to_dict(self._call(
            'show attachment %s' % attachment_id,
            lambda c: c.attachments.show(attachment_id),
            not_found=lambda: exception.VolumeAttachmentNotFound(
                attachment_id=attachment_id)))

    def attachment_update(self, attachment_id: str, connector: dict) -> dict:
        """Export the volume to ``connector``'s host; the attachment, with
        its ``connection_info``."""
        return _to_dict(self._call(
            'update attachment %s' % attachment_id,
            lambda c: c.attachments.update(attachment_id, connector),
            not_found=lambda: exception.VolumeAttachmentNotFound(
                attachment_id=attachment_id)))

    def attachment_complete(self, attachment_id: str) -> None:
        self._call('complete attachment %s' % attachment_id,
                   lambda c: c.attachments.complete(attachment_id),
                   not_found=lambda: exception.VolumeAttachmentNotFound(
                       attachment_id=attachment_id))

    def attachment_delete(self, attachment_id: str) -> bool:
        """Delete the attachment; False when it was already gone."""
        try:
            self._call('delete attachment %s' % attachment_id,
                       lambda c: c.attachments.delete(attachment_id),
                       not_found=lambda: exception.VolumeAttachmentNotFound(
                           attachment_id=attachment_id))
        except exception.VolumeAttachmentNotFound:
            return False
        return True
