"""Images from the Glance image service, over python-glanceclient (API v2).

:class:`GlanceImageService` offers the interface of
:class:`lifecycle.image.local.LocalImageService` (``list``, ``get``,
``find_by_name``, ``download``, ``create``, ``delete``) plus ``upload`` for
full offload, so the compute manager and the REST API use either.

The client is built from the ``[glance]`` options with keystoneauth1's
loaders (session, auth plugin, adapter), as Nova builds its own: Keystone in
production, ``auth_type = none`` with ``endpoint_override`` for a Glance
without Keystone.

Data safety:

* a download streams into a temporary file beside the destination, hashing
  while it writes; the size and Glance's ``os_hash_value`` (multihash,
  sha512 by default) or its md5 ``checksum`` must match before the file is
  renamed into place. On any failure nothing is left at the destination.
* an upload streams from the file in 1 MiB reads (never the whole file in
  memory), hashing what it sends; the image is then read back from Glance
  and must be ``active`` with the size and hashes of the data sent, else it
  is deleted and :class:`~lifecycle.exception.ImageUploadFailed` raised.

Both log their progress (bytes, percentage, rate) at INFO level every
``[glance] transfer_log_interval`` seconds.
"""

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable

import glanceclient
from glanceclient.common import utils as glance_utils
from glanceclient import exc as glance_exc
from oslo_config import cfg
from oslo_log import log as logging
import requests

from lifecycle import context as lc_context
from lifecycle import exception
from lifecycle import ksa_client
from lifecycle.conf import CONF
from lifecycle.storage import qemu_img
from lifecycle.storage import paths

LOG = logging.getLogger(__name__)

GROUP = 'glance'
API_VERSION = '2'
CHUNK_SIZE = 1 << 20
MiB = 1 << 20
UPLOAD_HASH_ALGO = 'sha512'  # Glance's default [DEFAULT] hashing_algorithm

# Fields of Glance's image schema; every other key is an image property.
CORE_FIELDS = frozenset({
    'id', 'name', 'status', 'visibility', 'protected', 'os_hidden', 'owner',
    'checksum', 'os_hash_algo', 'os_hash_value', 'size', 'virtual_size',
    'min_ram', 'min_disk', 'disk_format', 'container_format', 'created_at',
    'updated_at', 'tags', 'locations', 'direct_url', 'stores', 'self',
    'file', 'schema'})


def _is_retriable(error: BaseException) -> bool:
    """A failure of the connection or of the server, worth another try."""
    return ksa_client.is_transient(error, (
        glance_exc.CommunicationError, glance_exc.InvalidEndpoint,
        # raised while the body streams (requests wraps urllib3's errors
        # in these)
        requests.exceptions.ConnectionError,
        requests.exceptions.ChunkedEncodingError))


def _to_dict(image) -> dict:
    """A plain dict of Glance's image, plus ``properties`` (the non-core
    keys, as Nova's image proxy shows them under ``metadata``)."""
    meta = {k: v for k, v in dict(image).items() if k != 'self'}
    meta['properties'] = {k: v for k, v in meta.items()
                          if k not in CORE_FIELDS
                          and not k.startswith('os_glance_')}
    return meta


class _Progress:
    """Logs a transfer's progress at INFO every ``interval`` seconds."""

    def __init__(self, verb: str, image_id: str, total: int | None,
                 interval: float) -> None:
        self.verb = verb  # 'Downloading' / 'Uploading'
        self.image_id = image_id
        self.total = total
        self.interval = interval
        self.done = 0
        self.started = time.monotonic()
        self._next = self.started + interval

    def _rate(self, now: float) -> float:
        return self.done / MiB / max(now - self.started, 1e-6)

    def update(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        if self.total:
            LOG.info('%(verb)s image %(id)s: %(done).1f of %(total).1f MiB '
                     '(%(pct)d%%), %(rate).1f MiB/s',
                     {'verb': self.verb, 'id': self.image_id,
                      'done': self.done / MiB, 'total': self.total / MiB,
                      'pct': 100 * self.done // self.total,
                      'rate': self._rate(now)})
        else:
            LOG.info('%(verb)s image %(id)s: %(done).1f MiB, '
                     '%(rate).1f MiB/s',
                     {'verb': self.verb, 'id': self.image_id,
                      'done': self.done / MiB, 'rate': self._rate(now)})

    def summary(self) -> dict:
        now = time.monotonic()
        return {'id': self.image_id, 'mib': self.done / MiB,
                'secs': now - self.started, 'rate': self._rate(now)}


class _UploadStream:
    """File-like view of an open file for glanceclient's upload.

    glanceclient sends a file-like body as a chunked stream of
    ``read(CHUNK_SIZE)`` results; ``read`` never returns more than
    ``CHUNK_SIZE`` bytes, whatever is asked, so the file is never held in
    memory. What is read is hashed (md5 for Glance's ``checksum`` and
    ``UPLOAD_HASH_ALGO`` for its multihash) and counted.
    """

    def __init__(self, fileobj, progress: _Progress) -> None:
        self._file = fileobj
        self._progress = progress
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.hash = hashlib.new(UPLOAD_HASH_ALGO)
        self.size = 0

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > CHUNK_SIZE:
            size = CHUNK_SIZE
        chunk = self._file.read(size)
        if chunk:
            self.md5.update(chunk)
            self.hash.update(chunk)
            self.size += len(chunk)
            self._progress.update(len(chunk))
        return chunk


class GlanceImageService:
    """Images kept in Glance, reached through the ``[glance]`` options.

    ``client`` (a glanceclient v2 client) replaces the one built from the
    options, for tests.
    """

    def __init__(self, conf: cfg.ConfigOpts | None = None,
                 client=None) -> None:
        self.conf = CONF if conf is None else conf
        self._lock = threading.Lock()
        self._transport: tuple | None = None
        self._clients: dict[bool, object] = {}
        self._given_client = client
        if client is not None:
            self._clients = {True: client, False: client}

    # -- the client ----------------------------------------------------------

    def _load_transport(self) -> tuple:
        """(session, auth plugin, adapter, endpoint) from ``[glance]``.

        The endpoint is ``endpoint_override`` or the catalog's (service
        type, interfaces, region of the adapter options).
        """
        conf = self.conf
        transport = ksa_client.load_transport(conf, GROUP)
        session, auth, adapter = transport
        endpoint = ksa_client.find_endpoint(
            transport, lambda reason: exception.ImageServiceError(
                what='endpoint discovery', reason=reason))
        if not endpoint:
            raise exception.InvalidConfiguration(reason=ksa_client.no_endpoint(
                GROUP, conf[GROUP].service_type, 'image service'))
        # glanceclient adds /v2/... itself: an endpoint ending in /v2 would
        # double it.
        endpoint, _version = glance_utils.strip_version(endpoint)
        LOG.debug('Glance endpoint %s', endpoint)
        return session, auth, adapter, endpoint

    def _build_client(self, retries: bool, user_auth=None,
                      global_request_id: str | None = None):
        """A glanceclient v2 client on the shared keystoneauth1 session,
        authenticated as the service or, with ``user_auth``, as the caller.

        The upload client (``retries=False``) never lets keystoneauth1
        resend a request: a streamed body cannot be replayed.
        """
        with self._lock:
            if self._transport is None:
                self._transport = self._load_transport()
        session, auth, adapter, endpoint = self._transport
        kwargs = {'session': session, 'auth': user_auth or auth,
                  'endpoint_override': endpoint,
                  'interface': adapter.interface,
                  'region_name': adapter.region_name}
        if global_request_id:
            kwargs['global_request_id'] = global_request_id
        if retries:
            kwargs.update(
                connect_retries=adapter.connect_retries,
                connect_retry_delay=adapter.connect_retry_delay,
                status_code_retries=adapter.status_code_retries,
                status_code_retry_delay=adapter.status_code_retry_delay,
                retriable_status_codes=adapter.retriable_status_codes)
        else:
            kwargs.update(connect_retries=0, status_code_retries=0)
        return glanceclient.Client(API_VERSION, **kwargs)

    def _client(self, retries: bool = True):
        """The client for this call: as the caller of the current request
        (its token, plus a service token with ``[service_user]``, and its
        global request id), as Nova calls Glance; as the service otherwise
        (a client given to the constructor is always used)."""
        if self._given_client is None:
            user_auth, global_id = lc_context.caller_auth(self.conf)
            if user_auth is not None or global_id:
                return self._build_client(retries, user_auth, global_id)
        with self._lock:
            client = self._clients.get(retries)
        if client is None:
            client = self._build_client(retries)
            with self._lock:
                client = self._clients.setdefault(retries, client)
        return client

    def _call(self, what: str, func: Callable, *args, **kwargs):
        """``func(client, ...)`` with ``[glance] num_retries`` retries of
        connection and 5xx failures. A 404 is raised as glanceclient's
        HTTPNotFound for the caller to name; other failures as
        ImageServiceError."""
        try:
            return ksa_client.call_with_retries(
                'Image service', what, self.conf[GROUP].num_retries + 1,
                lambda: func(self._client(), *args, **kwargs),
                lambda e: (_is_retriable(e) and
                           not isinstance(e, glance_exc.HTTPNotFound)))
        except (glance_exc.HTTPNotFound, exception.LifecycleException):
            raise
        except Exception as e:
            raise exception.ImageServiceError(
                what=what, reason=exception.describe(e)) from e

    @staticmethod
    def _canonical(image_id: str) -> str:
        try:
            return paths.canonical_uuid(image_id)
        except exception.InvalidInput:
            raise exception.ImageNotFound(image_id=image_id) from None

    # -- reading -------------------------------------------------------------

    def get(self, image_id: str) -> dict:
        canonical = self._canonical(image_id)
        try:
            image = self._call('show %s' % canonical,
                               lambda c: c.images.get(canonical))
        except glance_exc.HTTPNotFound:
            raise exception.ImageNotFound(image_id=image_id) from None
        return _to_dict(image)

    def list(self, **filters) -> list[dict]:
        """Every image visible (all statuses), oldest first; ``filters`` are
        Glance's list filters (``name``, ``status``, properties)."""
        found = self._call(
            'list', lambda c: [_to_dict(i) for i in c.images.list(
                filters=filters, page_size=100)])
        return sorted(found, key=lambda m: (m.get('created_at') or '',
                                            m.get('id') or ''))

    def find_by_name(self, name: str) -> dict | None:
        """The oldest active image called ``name``, or None."""
        found = self.list(name=name, status='active')
        return found[0] if found else None

    def download(self, image_id: str, dest_path: str) -> None:
        """Write the image data to ``dest_path``, verified.

        The data is streamed into a temporary file in the destination's
        directory while its hash is computed, checked against Glance's size
        and ``os_hash_value`` (or md5 ``checksum`` when the image has no
        multihash or its algorithm is unknown here), then renamed to
        ``dest_path``. A connection or server failure restarts the download
        (``[glance] num_retries``). ImageNotFound when there is no such
        image; on any other failure the temporary file and ``dest_path`` are
        removed and ImageFetchError is raised.
        """
        try:
            meta = self.get(image_id)
        except exception.ImageServiceError as e:
            paths.remove_quietly(dest_path)
            raise exception.ImageFetchError(
                image_id=image_id, reason=e.format_message()) from e
        image_id = meta['id']
        if meta.get('status') != 'active':
            paths.remove_quietly(dest_path)
            raise exception.ImageFetchError(
                image_id=image_id,
                reason='image status is %s, not active' % meta.get('status'))
        algo, expected = meta.get('os_hash_algo'), meta.get('os_hash_value')
        if not (algo and expected and algo in hashlib.algorithms_available):
            algo, expected = 'md5', meta.get('checksum')
        if not expected:
            paths.remove_quietly(dest_path)
            raise exception.ImageFetchError(
                image_id=image_id, reason='Glance records no checksum for '
                                          'it; unverifiable data is not used')
        def download() -> None:
            try:
                self._download_once(meta, algo, expected, dest_path)
            except Exception:
                paths.remove_quietly(dest_path)
                raise
        try:
            ksa_client.call_with_retries(
                'Image service', 'download of image %s' % image_id,
                self.conf[GROUP].num_retries + 1, download, _is_retriable)
        except exception.ImageFetchError:
            raise
        except glance_exc.HTTPNotFound as e:
            raise exception.ImageFetchError(
                image_id=image_id, reason='the image data is gone') from e
        except Exception as e:
            raise exception.ImageFetchError(
                image_id=image_id, reason=exception.describe(e)) from e

    def _download_once(self, meta: dict, algo: str, expected: str,
                       dest_path: str) -> None:
        image_id, size = meta['id'], meta.get('size')
        dest_dir, dest_name = os.path.split(os.path.abspath(dest_path))
        # '.<dest name>.XXXX.part'; when dest is itself a hidden temporary
        # name (ensure_base's '.<base>.XXXX.part'), the same prefix keeps
        # the file among those ensure_base removes after a crash.
        prefix = dest_name if dest_name.startswith('.') else '.' + dest_name
        fd, tmp = tempfile.mkstemp(prefix=prefix + '.', suffix='.part',
                                   dir=dest_dir)
        progress = _Progress('Downloading', image_id, size,
                             self.conf[GROUP].transfer_log_interval)
        hasher = hashlib.new(algo, usedforsecurity=False)
        LOG.info('Downloading image %(id)s (%(size)s bytes) to %(dest)s',
                 {'id': image_id, 'size': size, 'dest': dest_path})
        try:
            with os.fdopen(fd, 'wb') as f:
                body = self._client().images.data(image_id,
                                                  do_checksum=False)
                if body is None:
                    raise exception.ImageFetchError(
                        image_id=image_id, reason='Glance sent no data')
                written = self._write_chunks(body, f, hasher, progress)
                f.truncate(written)
                f.flush()
                os.fsync(f.fileno())
            problems = []
            if size is not None and written != size:
                problems.append('received %d bytes, Glance records %d'
                                % (written, size))
            if hasher.hexdigest() != expected:
                problems.append('%s of the data differs from the image\'s'
                                % algo)
            if problems:
                raise exception.ImageFetchError(image_id=image_id,
                                                reason='; '.join(problems))
            os.rename(tmp, dest_path)
        finally:
            paths.remove_quietly(tmp)
        LOG.info('Downloaded image %(id)s: %(mib).1f MiB in %(secs).1f s '
                 '(%(rate).1f MiB/s), %(algo)s verified',
                 dict(progress.summary(), algo=algo))

    @staticmethod
    def _write_chunks(body: Iterable[bytes], f, hasher,
                      progress: _Progress) -> int:
        """Write ``body`` to ``f``, leaving holes for all-zero chunks."""
        written = 0
        for chunk in body:
            if not chunk:
                continue
            hasher.update(chunk)
            if chunk.count(0) == len(chunk):
                f.seek(len(chunk), os.SEEK_CUR)
            else:
                f.write(chunk)
            written += len(chunk)
            progress.update(len(chunk))
        return written

    # -- writing -------------------------------------------------------------

    def create(self, name: str, src_path: str,
               disk_format: str | None = None) -> dict:
        """Register ``src_path`` as a new active image (all-in-one, tests).

        As the local source: the file's format is detected with ``qemu-img
        info`` and must be raw or qcow2 without backing or data file (and
        ``disk_format`` when given).
        """
        detected = qemu_img.inspect_untrusted(src_path, disk_format)
        return self.upload(name, src_path, detected['format'])

    def upload(self, name: str, src_path: str, disk_format: str,
               properties: dict | None = None,
               container_format: str = 'bare',
               owner: str | None = None) -> dict:
        """Stream ``src_path`` into a new image; return it once verified.

        The image record is created with ``properties`` (string values) and,
        when given, ``owner``: the project the image belongs to (Glance lets
        an admin or the service create an image for another project; Nova's
        shelve snapshot belongs to the instance's project, not to the
        service's). The data is streamed from the file and the image read
        back: it must be ``active`` with the size, md5 ``checksum`` and
        multihash of the data sent. Otherwise (or on any error, Glance dying
        included) the image is deleted -- if Glance still answers -- and
        ImageUploadFailed is raised with its id, so a leftover can be cleaned
        up later; such a leftover is never ``active``.
        """
        properties = dict(properties or {})
        if owner:
            properties['owner'] = owner
        with open(src_path, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            try:
                image = self._call(
                    'create %r' % name, lambda c: c.images.create(
                        name=name, disk_format=disk_format,
                        container_format=container_format, **properties))
            except Exception as e:
                raise exception.ImageUploadFailed(
                    path=src_path, name=name, image_id=None,
                    reason=exception.describe(e)) from e
            image_id = image['id']
            progress = _Progress('Uploading', image_id, size,
                                 self.conf[GROUP].transfer_log_interval)
            stream = _UploadStream(f, progress)
            LOG.info('Uploading %(path)s (%(size)d bytes, %(fmt)s) as image '
                     '%(id)s (%(name)s)', {'path': src_path, 'size': size,
                                           'fmt': disk_format, 'id': image_id,
                                           'name': name})
            try:
                self._client(retries=False).images.upload(
                    image_id, stream, image_size=size)
                meta = self._verify_upload(image_id, src_path, size, stream)
            except Exception as e:
                reason = exception.describe(e)
                if not self._delete_after_failure(image_id):
                    reason += ('; image %s could not be deleted (it is not '
                               'active; delete it later)' % image_id)
                raise exception.ImageUploadFailed(
                    path=src_path, name=name, image_id=image_id,
                    reason=reason) from e
        LOG.info('Uploaded image %(id)s: %(mib).1f MiB in %(secs).1f s '
                 '(%(rate).1f MiB/s), size and checksums verified',
                 progress.summary())
        return meta

    def _verify_upload(self, image_id: str, src_path: str, size: int,
                       stream: _UploadStream) -> dict:
        if stream.size != size:
            raise exception.Invalid(
                reason='%s changed during the upload (%d bytes sent, %d '
                       'expected)' % (src_path, stream.size, size))
        meta = self.get(image_id)
        problems = []
        if meta.get('status') != 'active':
            problems.append('status %s' % meta.get('status'))
        if meta.get('size') != stream.size:
            problems.append('size %s, %d sent' % (meta.get('size'),
                                                  stream.size))
        if meta.get('checksum') not in (None, stream.md5.hexdigest()):
            problems.append('md5 checksum differs')
        algo, value = meta.get('os_hash_algo'), meta.get('os_hash_value')
        if not (algo and value):
            problems.append('no multihash')
        else:
            if algo == UPLOAD_HASH_ALGO:
                sent = stream.hash.hexdigest()
            else:  # Glance is set to another hashing_algorithm
                sent = self._file_hash(src_path, algo)
            if sent != value:
                problems.append('%s hash differs' % algo)
        if problems:
            raise exception.Invalid(
                reason='Glance has image %s with %s'
                       % (image_id, ', '.join(problems)))
        return meta

    @staticmethod
    def _file_hash(path: str, algo: str) -> str:
        hasher = hashlib.new(algo)
        with open(path, 'rb') as f:
            while chunk := f.read(CHUNK_SIZE):
                hasher.update(chunk)
        return hasher.hexdigest()

    def _delete_after_failure(self, image_id: str) -> bool:
        try:
            self._client().images.delete(image_id)
        except glance_exc.HTTPNotFound:
            return True
        except Exception as e:
            LOG.warning('Could not delete image %(id)s after its failed '
                        'upload: %(err)s',
                        {'id': image_id, 'err': exception.describe(e)})
            return False
        LOG.info('Deleted image %s after its failed upload', image_id)
        return True

    def delete(self, image_id: str) -> bool:
        """Delete the image; False when there is no such image."""
        try:
            canonical = self._canonical(image_id)
            self._call('delete %s' % canonical,
                       lambda c: c.images.delete(canonical))
        except (exception.ImageNotFound, glance_exc.HTTPNotFound):
            return False
        LOG.info('Deleted image %s', image_id)
        return True
