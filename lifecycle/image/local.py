"""A local directory of images, the all-in-one's stand-in for Glance.

Each image is a file ``<id>`` beside its metadata ``<id>.json`` carrying
Glance's image fields (``checksum`` is the md5 of the data, ``os_hash_value``
its sha512). The metadata file is written last and atomically, so an image
is listed only once its data is complete. Downloads verify both hashes while
streaming and never leave a partial destination file behind.
"""

import hashlib
import json
import os
import uuid

from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import exception
from lifecycle.storage import qemu_img
from lifecycle.storage import paths

LOG = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
MiB = 1 << 20
HASH_ALGO = 'sha512'
BLANK_PATTERN = 0x4c
BLANK_PATTERN_LENGTH = 64 * 1024
_ZERO_CHUNK = bytes(CHUNK_SIZE)


def _now() -> str:
    return timeutils.utcnow().strftime('%Y-%m-%dT%H:%M:%SZ')


def _copy(src_path: str, dest_path: str) -> tuple[int, str, str]:
    """Stream ``src_path`` to ``dest_path`` (sparse); (size, md5, sha512)."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.new(HASH_ALGO)
    size = 0
    with open(src_path, 'rb') as fin, open(dest_path, 'wb') as fout:
        while chunk := fin.read(CHUNK_SIZE):
            md5.update(chunk)
            sha.update(chunk)
            size += len(chunk)
            if len(chunk) == CHUNK_SIZE and chunk == _ZERO_CHUNK:
                fout.seek(len(chunk), os.SEEK_CUR)  # leave a hole
            else:
                fout.write(chunk)
        fout.truncate(size)
        fout.flush()
        os.fsync(fout.fileno())
    return size, md5.hexdigest(), sha.hexdigest()


class LocalImageService:
    """Images kept as files in ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, paths.DIR_MODE, exist_ok=True)

    def _paths(self, image_id: str) -> tuple[str, str]:
        """(data file, metadata file) of ``image_id``; ImageNotFound if bad."""
        try:
            canonical = paths.canonical_uuid(image_id)
        except exception.InvalidInput:
            raise exception.ImageNotFound(image_id=image_id) from None
        data = paths.confine(self.directory, canonical)
        return data, data + '.json'

    def _read_meta(self, meta_path: str) -> dict:
        with open(meta_path) as f:
            return json.load(f)

    def get(self, image_id: str) -> dict:
        _data, meta_path = self._paths(image_id)
        try:
            return self._read_meta(meta_path)
        except FileNotFoundError:
            raise exception.ImageNotFound(image_id=image_id) from None
        except (OSError, ValueError) as e:
            LOG.warning('Unreadable image metadata %(path)s: %(err)s',
                        {'path': meta_path, 'err': e})
            raise exception.ImageNotFound(image_id=image_id) from e

    def list(self, **filters) -> list[dict]:
        """Images oldest first; ``filters`` as Glance's: a key of the image
        or of its properties must have the value."""
        found = []
        for entry in os.scandir(self.directory):
            stem, ext = os.path.splitext(entry.name)
            if ext != '.json' or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if paths.canonical_uuid(stem) != stem:
                    continue
                found.append(self._read_meta(entry.path))
            except exception.InvalidInput:
                continue
            except (OSError, ValueError) as e:
                LOG.warning('Skipping unreadable image metadata %(path)s: '
                            '%(err)s', {'path': entry.path, 'err': e})
        found = [m for m in found if all(
            m.get(k, (m.get('properties') or {}).get(k)) == v
            for k, v in filters.items())]
        return sorted(found, key=lambda m: (m.get('created_at') or '',
                                            m.get('id') or ''))

    def find_by_name(self, name: str) -> dict | None:
        for meta in self.list():
            if meta.get('name') == name and meta.get('status') == 'active':
                return meta
        return None

    def download(self, image_id: str, dest_path: str) -> None:
        """Copy the image data to ``dest_path``, verifying its checksums.

        On any failure (unreadable data, size or hash mismatch) ``dest_path``
        is removed and ImageFetchError raised.
        """
        meta = self.get(image_id)
        data_path, _meta = self._paths(image_id)
        try:
            size, md5, sha = _copy(data_path, dest_path)
            problems = []
            if meta.get('size') is not None and size != meta['size']:
                problems.append('size %d != %d' % (size, meta['size']))
            if md5 != meta.get('checksum'):
                problems.append('md5 checksum mismatch')
            if (meta.get('os_hash_algo') == HASH_ALGO
                    and sha != meta.get('os_hash_value')):
                problems.append('%s hash mismatch' % HASH_ALGO)
            if problems:
                raise exception.ImageFetchError(image_id=image_id,
                                                reason='; '.join(problems))
        except exception.ImageFetchError:
            paths.remove_quietly(dest_path)
            raise
        except Exception as e:
            paths.remove_quietly(dest_path)
            raise exception.ImageFetchError(image_id=image_id,
                                            reason=str(e)) from e
        LOG.debug('Downloaded image %(id)s to %(dest)s (%(size)d bytes)',
                  {'id': image_id, 'dest': dest_path, 'size': size})

    def upload(self, name: str, src_path: str, disk_format: str,
               properties: dict | None = None,
               owner: str | None = None) -> dict:
        """Store ``src_path`` as a new image, as GlanceImageService.upload:
        the copy's checksums are computed while copying and the image is
        listed only once complete; ``owner`` is recorded as the image's."""
        return self.create(name, src_path, disk_format, properties,
                           owner=owner)

    def create(self, name: str, src_path: str,
               disk_format: str | None = None,
               properties: dict | None = None,
               owner: str | None = None) -> dict:
        """Register a copy of ``src_path`` as a new active image.

        The copy's format is detected with ``qemu-img info`` and must be raw
        or qcow2 without backing or data file (and ``disk_format`` when
        given).
        """
        image_id = str(uuid.uuid4())
        data_path, meta_path = self._paths(image_id)
        tmp = os.path.join(self.directory, '.%s.part' % image_id)
        try:
            size, md5, sha = _copy(src_path, tmp)
            detected = qemu_img.inspect_untrusted(tmp, disk_format)
            os.chmod(tmp, paths.FILE_MODE)
            os.rename(tmp, data_path)
        except OSError as e:
            raise exception.StorageError(
                reason='cannot copy image %s: %s' % (src_path, e)) from e
        finally:
            paths.remove_quietly(tmp)
        now = _now()
        meta = {
            'id': image_id, 'name': name, 'status': 'active',
            'disk_format': detected['format'], 'container_format': 'bare',
            'size': size, 'virtual_size': int(detected['virtual-size']),
            'checksum': md5, 'os_hash_algo': HASH_ALGO, 'os_hash_value': sha,
            'min_disk': 0, 'min_ram': 0, 'visibility': 'public',
            'protected': False, 'created_at': now, 'updated_at': now,
            'properties': dict(properties or {}),
        }
        if owner:
            meta['owner'] = owner
        try:
            paths.write_json_atomic(meta_path, meta)
        except Exception:
            paths.remove_quietly(data_path)
            raise
        LOG.info('Registered image %(id)s (%(name)s, %(fmt)s, %(size)d bytes)',
                 {'id': image_id, 'name': name, 'fmt': meta['disk_format'],
                  'size': size})
        return meta

    def delete(self, image_id: str) -> bool:
        """Delete an image; False when there was none (as Glance's)."""
        try:
            data_path, meta_path = self._paths(image_id)
            os.unlink(meta_path)  # unlisted first, then the data
        except (FileNotFoundError, exception.ImageNotFound):
            return False
        paths.remove_quietly(data_path)
        LOG.info('Deleted image %s', image_id)
        return True


def make_blank_image(path: str, size_mb: int) -> None:
    """A small sparse qcow2 with no OS and a recognisable header.

    The first 64 KiB hold the byte 0x4c (``BLANK_PATTERN``), so a base made
    from it is not empty and the data can be checked through overlays.
    """
    qemu_img.create(path, size_mb * MiB, 'qcow2')
    qemu_img.write_pattern(path, 'qcow2', BLANK_PATTERN, 0,
                         BLANK_PATTERN_LENGTH)
    os.chmod(path, paths.FILE_MODE)
