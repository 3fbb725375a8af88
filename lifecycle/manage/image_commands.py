"""``lifecycle-manage image import | list``: the images instances boot
from, in the image source of ``[image] source`` (the local directory
``[image] local_dir``, laid out as doc/source/images.rst describes, or
Glance)."""

import os
import stat

from oslo_config import cfg

from lifecycle import exception
from lifecycle.manage import SUCCESS
from lifecycle.manage import UsageError
from lifecycle.manage import cli
from lifecycle.manage import image_source
from lifecycle.manage import output
from lifecycle.storage import qemu_img

COLUMNS = (('id', 'ID'), ('name', 'Name'), ('status', 'Status'),
           ('disk_format', 'Format'), ('size_human', 'Size'),
           ('virtual_size_human', 'Virtual size'), ('checksum', 'Checksum'))
# What import prints and returns of the new image.
_FIELDS = ('id', 'name', 'status', 'disk_format', 'container_format', 'size',
           'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value',
           'visibility', 'created_at')


def _properties(pairs: list[str] | None) -> dict[str, str]:
    found = {}
    for pair in pairs or ():
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise UsageError('--property %r is not KEY=VALUE' % pair)
        found[key] = value
    return found


class ImageCommands:
    """Images: ``image import``, ``image list``."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    def close(self) -> None:
        pass

    def _service(self, create: bool):
        try:
            service = image_source.image_service(self.conf, create=create)
        except exception.InvalidConfiguration as e:
            raise UsageError(e.format_message()) from e
        if service is None and not create:
            raise UsageError('the image directory %s does not exist'
                             % image_source.local_dir(self.conf))
        return service

    def import_(self, path: str, image_name: str,
                disk_format: str | None = None,
                prop: list[str] | None = None, fmt: str = 'table') -> int:
        properties = _properties(prop)
        try:
            st = os.stat(path)
        except OSError as e:
            raise UsageError('cannot read %s: %s' % (path, e.strerror)) \
                from e
        if not stat.S_ISREG(st.st_mode):
            raise UsageError('%s is not a regular file' % path)
        if not os.access(path, os.R_OK):
            raise UsageError('cannot read %s: permission denied' % path)
        try:
            # Checked before anything is copied; the image source checks
            # its own copy again (the file could change meanwhile).
            detected = qemu_img.inspect_untrusted(path, disk_format)
        except exception.StorageError as e:
            raise UsageError(e.format_message()) from e
        service = self._service(create=True)
        existing = service.find_by_name(image_name)
        if existing is not None:
            raise UsageError('an image named %r exists already (id %s); '
                             'pick another --name' % (image_name,
                                                      existing['id']))
        image = service.upload(image_name, path, detected['format'],
                               properties)
        doc = {k: image.get(k) for k in _FIELDS}
        doc['properties'] = image.get('properties') or {}
        rows = [{'property': k, 'value': v} for k, v in doc.items()]
        output.emit(fmt, doc, rows, (('property', 'Property'),
                                     ('value', 'Value')))
        return SUCCESS

    def list_(self, fmt: str = 'table') -> int:
        service = self._service(create=False)
        found = service.list()
        rows = [dict(i, size_human=output.human_bytes(i.get('size')),
                     virtual_size_human=output.human_bytes(
                         i.get('virtual_size'))) for i in found]
        output.emit(fmt, {'images': found}, rows, COLUMNS,
                    ['%d image(s).' % len(found)])
        return SUCCESS


def register(subparsers) -> dict[str, type]:
    actions = cli.add_category(
        subparsers, 'image', 'images instances boot from (import, list)',
        'The images of the image source of [image] source: the local '
        'directory [image] local_dir (the all-in-one: <[aio] state_dir>/'
        'images), or Glance.')
    importing = cli.add_action(
        actions, 'import', 'add an image file to the image source',
        'Copy FILE into the image source as a new active image called '
        'NAME. The format is detected with "qemu-img info" (raw or qcow2; '
        'a qcow2 with a backing or data file is refused); the md5 checksum '
        'and the sha512 hash of the data are recorded (Glance: verified '
        'after the upload). Prints the new image; its ID is the imageRef '
        'of a server create.')
    importing.add_argument('path', metavar='FILE',
                           help='the image file to import (raw or qcow2)')
    importing.add_argument('--name', dest='image_name', required=True,
                           metavar='NAME',
                           help='name of the new image (must not be taken)')
    importing.add_argument('--disk-format', choices=qemu_img.FORMATS,
                           help='refuse the file unless its content is of '
                                'this format (default: any of %s)'
                                % ', '.join(qemu_img.FORMATS))
    importing.add_argument('--property', dest='prop', action='append',
                           metavar='KEY=VALUE',
                           help='an image property (repeatable)')
    cli.add_format(importing)
    listing = cli.add_action(actions, 'list', 'the images of the source')
    cli.add_format(listing)
    return {'image': ImageCommands}
