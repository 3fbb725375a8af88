"""GlanceImageService against a real Glance API (see glance_fixture.py).

Glance runs without Keystone, on SQLite and a file store in a temporary
directory, under gunicorn; the client reaches it with ``[glance] auth_type =
none`` and ``endpoint_override``. Data is tampered with in Glance's own file
store, and Glance is killed (SIGKILL) in the middle of an upload.
"""

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import uuid

import pytest

from lifecycle import exception
from lifecycle import image as image_sources
from lifecycle.image import glance as glance_image
from lifecycle.image import local
from lifecycle.storage import flat
from lifecycle.storage import qemu_img
from lifecycle.storage import qcow2
from tests.functional import glance_fixture

pytestmark = pytest.mark.slow

# The session fixture, registered in this module (see glance_fixture.py).

MiB = 1 << 20
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


@pytest.fixture
def conf(glance_server):
    return glance_fixture.make_conf(glance_server.endpoint)


@pytest.fixture
def service(conf):
    return glance_image.GlanceImageService(conf)


@pytest.fixture
def name(service):
    """A unique image name; images left with it are deleted afterwards."""
    value = 'test-%s' % uuid.uuid4().hex[:12]
    yield value
    for meta in service.list(name=value):
        service.delete(meta['id'])


def _digest(path, algo):
    hasher = hashlib.new(algo)
    with open(path, 'rb') as f:
        while chunk := f.read(MiB):
            hasher.update(chunk)
    return hasher.hexdigest()


def _random_file(path, size):
    with open(path, 'wb') as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
        f.write(os.urandom(size % MiB))
    return str(path)


def _qcow2_with_data(tmp_path, data_mib):
    """A qcow2 holding ``data_mib`` MiB of random data (file ~ that size)."""
    raw = _random_file(tmp_path / 'data.raw', data_mib * MiB)
    path = str(tmp_path / 'data.qcow2')
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
                    path], check=True)
    os.unlink(raw)
    return path


def _leftovers(directory):
    return sorted(os.listdir(directory))


# -- reading ----------------------------------------------------------------

def test_factory_picks_glance(conf, tmp_path):
    assert isinstance(image_sources.get_image_service(conf, None),
                      glance_image.GlanceImageService)
    conf.set_override('source', 'local', group='image')
    assert isinstance(image_sources.get_image_service(conf, str(tmp_path)),
                      local.LocalImageService)
    with pytest.raises(exception.InvalidConfiguration):
        image_sources.get_image_service(conf, None)


def test_versioned_endpoint_and_unreachable_glance(glance_server, tmp_path,
                                                   caplog):
    # An endpoint written with its version works as the bare one.
    versioned = glance_fixture.make_conf(glance_server.endpoint + '/v2/')
    glance_image.GlanceImageService(versioned).list()

    nobody = 'http://127.0.0.1:%d' % glance_fixture.free_port()
    service = glance_image.GlanceImageService(
        glance_fixture.make_conf(nobody, num_retries=1))
    with pytest.raises(exception.ImageServiceError):
        service.list()
    assert 'attempt 1 of 2' in caplog.text
    with pytest.raises(exception.ImageFetchError):
        service.download(str(uuid.uuid4()), str(tmp_path / 'disk'))
    assert _leftovers(tmp_path) == []


def test_create_list_get_find_download(service, glance_server, name,
                                       tmp_path):
    src = str(tmp_path / 'blank.qcow2')
    local.make_blank_image(src, 16)
    meta = service.create(name, src)
    image_id = meta['id']
    assert uuid.UUID(image_id)
    assert meta['name'] == name
    assert meta['status'] == 'active'
    assert meta['disk_format'] == 'qcow2'
    assert meta['container_format'] == 'bare'
    assert meta['size'] == os.path.getsize(src)
    assert meta['checksum'] == _digest(src, 'md5')
    assert meta['os_hash_algo'] == 'sha512'
    assert meta['os_hash_value'] == _digest(src, 'sha512')
    assert meta['properties'] == {}

    shown = service.get(image_id.upper())
    for key in ('id', 'name', 'status', 'size', 'checksum', 'os_hash_value',
                'disk_format', 'created_at'):
        assert shown[key] == meta[key]
    assert image_id in [m['id'] for m in service.list()]
    assert service.find_by_name(name)['id'] == image_id
    assert service.find_by_name(name + '-none') is None

    out = tmp_path / 'out'
    out.mkdir()
    dest = str(out / 'disk')
    service.download(image_id, dest)
    assert _digest(dest, 'sha512') == meta['os_hash_value']
    assert _leftovers(out) == ['disk']
    assert qemu_img.info(dest, 'qcow2')['virtual-size'] == 16 * MiB
    assert glance_server.data_requests(image_id) == 1


def test_unknown_images(service, name, tmp_path):
    missing = str(uuid.uuid4())
    for bad in (missing, 'not-a-uuid', '../../v2/images'):
        with pytest.raises(exception.ImageNotFound):
            service.get(bad)
        assert service.delete(bad) is False
    with pytest.raises(exception.ImageNotFound):
        service.download(missing, str(tmp_path / 'x'))
    assert _leftovers(tmp_path) == []

    src = _random_file(tmp_path / 'x.raw', MiB)
    image_id = service.create(name, src, 'raw')['id']
    assert service.delete(image_id) is True
    with pytest.raises(exception.ImageNotFound):
        service.get(image_id)
    assert service.delete(image_id) is False


def test_download_refuses_an_image_without_data(service, name, tmp_path):
    client = service._client()
    queued = client.images.create(name=name, disk_format='raw',
                                  container_format='bare')
    with pytest.raises(exception.ImageFetchError, match='queued'):
        service.download(queued['id'], str(tmp_path / 'disk'))
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize('damage', ['flip-a-byte', 'truncate'])
def test_damaged_data_is_refused_and_nothing_is_left(
        service, glance_server, name, tmp_path, damage):
    src = _random_file(tmp_path / 'src.raw', 4 * MiB + 123)
    meta = service.create(name, src, 'raw')
    stored = glance_server.store_path(meta['id'])
    assert _digest(stored, 'sha512') == meta['os_hash_value']
    with open(stored, 'r+b') as f:
        if damage == 'truncate':
            f.truncate(2 * MiB)
        else:
            f.seek(3 * MiB)
            byte = f.read(1)
            f.seek(3 * MiB)
            f.write(bytes([byte[0] ^ 0xff]))

    out = tmp_path / 'out'
    out.mkdir()
    with pytest.raises(exception.ImageFetchError):
        service.download(meta['id'], str(out / 'disk'))
    assert _leftovers(out) == []

    # Through ensure_base: nothing at the base path, no partial file.
    backend = flat.FlatBackend(str(tmp_path / 'group'))
    with pytest.raises(exception.ImageFetchError):
        backend.ensure_base(meta['id'],
                            lambda p: service.download(meta['id'], p))
    assert _leftovers(backend.base_dir) == ['.locks']


def test_download_retries_then_reports(conf, glance_server, name, tmp_path):
    """A connection failure restarts the download ([glance] num_retries)."""
    conf.set_override('num_retries', 1, group='glance')
    service = glance_image.GlanceImageService(conf)
    src = _random_file(tmp_path / 'src.raw', 2 * MiB)
    meta = service.create(name, src, 'raw')
    with open(glance_server.store_path(meta['id']), 'r+b') as f:
        f.truncate(MiB)  # Glance announces 2 MiB and sends 1 MiB
    with pytest.raises(exception.ImageFetchError):
        service.download(meta['id'], str(tmp_path / 'disk'))
    assert glance_server.data_requests(meta['id']) == 2  # tried twice
    assert not os.path.exists(tmp_path / 'disk')


def test_progress_lines(caplog):
    caplog.set_level(logging.INFO, logger='lifecycle.image.glance')
    progress = glance_image._Progress('Uploading', 'img-1', 100 * MiB, 0)
    progress.update(25 * MiB)
    progress.update(25 * MiB)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert 'Uploading image img-1: 25.0 of 100.0 MiB (25%)' in lines[0]
    assert '(50%)' in lines[1] and lines[1].endswith('MiB/s')


# -- uploading ----------------------------------------------------------------

def test_upload_64mib_qcow2(service, glance_server, name, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger='lifecycle.image.glance')
    src = _qcow2_with_data(tmp_path, 64)
    size = os.path.getsize(src)
    assert size > 64 * MiB
    sha512 = _digest(src, 'sha512')
    instance = str(uuid.uuid4())
    meta = service.upload(name, src, 'qcow2',
                          {'instance_uuid': instance,
                           'image_type': 'snapshot'})
    assert meta['status'] == 'active'
    assert meta['size'] == size
    assert meta['os_hash_algo'] == 'sha512'
    assert meta['os_hash_value'] == sha512
    assert meta['checksum'] == _digest(src, 'md5')
    assert meta['disk_format'] == 'qcow2'
    assert meta['properties'] == {'instance_uuid': instance,
                                  'image_type': 'snapshot'}
    # What Glance stored is what was sent; the source is unchanged.
    assert _digest(glance_server.store_path(meta['id']), 'sha512') == sha512
    assert _digest(src, 'sha512') == sha512
    assert any(r.getMessage().startswith('Uploaded image %s: ' % meta['id'])
               and 'verified' in r.getMessage() for r in caplog.records)


RSS_SCRIPT = r'''
import json, sys
from tests.functional import glance_fixture
from lifecycle.image import glance


def status_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])


endpoint, path, mode, name = sys.argv[1:5]
service = glance.GlanceImageService(glance_fixture.make_conf(endpoint))
service.list()  # client built, modules imported, connection pooled
before = status_kib('VmRSS')
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # peak RSS (VmHWM) := current RSS
if mode == 'upload':
    image_id = service.upload(name, path, 'raw')['id']
else:  # the control: what buffering the file would cost
    with open(path, 'rb') as f:
        data = f.read()
    image_id = None
print(json.dumps({'growth_kib': status_kib('VmHWM') - before,
                  'image_id': image_id}))
'''


def _rss_growth_mib(glance_server, path, mode, name):
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONWARNINGS='ignore')
    proc = subprocess.run(
        [sys.executable, '-c', RSS_SCRIPT, glance_server.endpoint, path,
         mode, name], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out['growth_kib'] / 1024, out['image_id']


def test_upload_streams_without_holding_the_file(service, glance_server,
                                                 name, tmp_path):
    """The peak RSS (VmHWM, reset just before) of a process uploading 256
    MiB grows by far less than the file; reading the file at once (the
    control) grows it by the file size, so the measure would see an upload
    that buffers the file."""
    path = str(tmp_path / 'big.raw')
    with open(path, 'wb') as f:
        f.truncate(256 * MiB)  # sparse: cheap to make, 256 MiB to read
    control, _ = _rss_growth_mib(glance_server, path, 'read', name)
    assert control >= 250
    growth, image_id = _rss_growth_mib(glance_server, path, 'upload', name)
    assert growth < 32, 'upload grew the peak RSS by %.0f MiB' % growth
    meta = service.get(image_id)
    assert meta['status'] == 'active' and meta['size'] == 256 * MiB
    assert meta['os_hash_value'] == hashlib.sha512(
        bytes(256 * MiB)).hexdigest()


def test_upload_of_data_glance_did_not_receive_intact(
        service, name, tmp_path, monkeypatch):
    """Glance stores other bytes than were hashed on the way out (as a
    corruption in transit would): the image is deleted, not kept."""
    src = _random_file(tmp_path / 'src.raw', 3 * MiB)
    real_read = glance_image._UploadStream.read

    def corrupting_read(self, size=-1):
        chunk = real_read(self, size)  # hashed as read from the file
        if chunk and self.size == len(chunk):  # the first chunk
            chunk = bytes([chunk[0] ^ 0xff]) + chunk[1:]
        return chunk

    monkeypatch.setattr(glance_image._UploadStream, 'read', corrupting_read)
    with pytest.raises(exception.ImageUploadFailed,
                       match='sha512 hash differs') as raised:
        service.upload(name, src, 'raw')
    assert 'could not be deleted' not in str(raised.value)
    image_id = raised.value.kwargs['image_id']
    with pytest.raises(exception.ImageNotFound):
        service.get(image_id)
    assert service.list(name=name) == []


def test_glance_killed_mid_upload(service, glance_server, name, tmp_path,
                                  monkeypatch):
    src = _random_file(tmp_path / 'disk.raw', 64 * MiB)
    before = (os.stat(src).st_mtime_ns, os.path.getsize(src),
              _digest(src, 'sha256'))
    real_read = glance_image._UploadStream.read
    killed = []

    def read_then_kill(self, size=-1):
        if self.size >= 8 * MiB and not killed:
            glance_server.kill()
            killed.append(self.size)
        return real_read(self, size)

    monkeypatch.setattr(glance_image._UploadStream, 'read', read_then_kill)
    try:
        with pytest.raises(exception.ImageUploadFailed) as raised:
            service.upload(name, src, 'raw')
    finally:
        glance_server.restart()
    assert killed, 'Glance was not killed during the upload'
    image_id = raised.value.kwargs['image_id']
    assert image_id
    assert 'could not be deleted' in str(raised.value)

    # The half image is recorded, but not as a good one.
    leftover = service.get(image_id)
    assert leftover['status'] in ('queued', 'saving', 'killed')
    assert service.find_by_name(name) is None
    assert all(m['status'] != 'active' for m in service.list(name=name))
    with pytest.raises(exception.ImageFetchError, match='not active'):
        service.download(image_id, str(tmp_path / 'out'))
    assert service.delete(image_id) is True
    assert service.list(name=name) == []
    # The source was only read.
    assert (os.stat(src).st_mtime_ns, os.path.getsize(src),
            _digest(src, 'sha256')) == before


# -- base images of a storage group ------------------------------------------

class _CountingImages:
    """Counts the downloads the storage layer asks for."""

    def __init__(self, service):
        self.service = service
        self.downloads = 0
        self._lock = threading.Lock()

    def download(self, image_id, dest_path):
        with self._lock:
            self.downloads += 1
        self.service.download(image_id, dest_path)


def test_ensure_base_once_per_storage_group(conf, glance_server, name,
                                            tmp_path):
    """Two hosts of one group (two backends on one shared path) place the
    base at the same time: Glance serves the image data once."""
    src = _qcow2_with_data(tmp_path, 8)
    creator = glance_image.GlanceImageService(conf)
    image_id = creator.create(name, src)['id']
    shared = str(tmp_path / 'group-a')
    hosts = [qcow2.Qcow2Backend(shared), qcow2.Qcow2Backend(shared)]
    counting = _CountingImages(glance_image.GlanceImageService(conf))
    barrier = threading.Barrier(len(hosts))
    results, errors = [], []

    def place(backend):
        try:
            barrier.wait()
            results.append(backend.ensure_base(
                image_id, lambda p: counting.download(image_id, p),
                'qcow2'))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=place, args=(b,)) for b in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(results) == 2 and results[0] == results[1]
    base = results[0]
    assert counting.downloads == 1
    assert glance_server.data_requests(image_id) == 1
    assert qemu_img.info(base, 'raw')['format'] == 'raw'
    subprocess.run(['qemu-img', 'compare', '-q', '-f', 'qcow2', '-F', 'raw',
                    src, base], check=True)
    assert _leftovers(os.path.dirname(base)) == sorted(
        ['.locks', os.path.basename(base)])

    # A third "host" later: the base is there, no download at all.
    again = qcow2.Qcow2Backend(shared).ensure_base(
        image_id, lambda p: counting.download(image_id, p), 'qcow2')
    assert again == base
    assert counting.downloads == 1
    assert glance_server.data_requests(image_id) == 1
    disk = hosts[1].create_root_disk(str(uuid.uuid4()), image_id, 1)
    assert qemu_img.qcow2_backing_file(disk.path) == base

