"""Thin wrappers around ``qemu-img`` and ``qemu-io``.

Formats are passed explicitly (``-f``) wherever the caller knows them: a
guest can write any header into its raw disk, so probing the format of an
instance disk would let it claim a backing file. Probing happens only in
:func:`inspect_untrusted`, for freshly fetched images, which then refuses
anything that is not a self-contained raw or qcow2 file. ``qemu-img info``
runs under resource limits as Nova does, against crafted headers.
"""

import json
import os
import struct

from oslo_concurrency import processutils
from oslo_log import log as logging

from lifecycle import exception

LOG = logging.getLogger(__name__)

FORMATS = ('qcow2', 'raw')
QCOW2_MAGIC = b'QFI\xfb'

# Same limits Nova puts on ``qemu-img info`` (CVE-2015-5162).
QEMU_IMG_LIMITS = processutils.ProcessLimits(cpu_time=30,
                                             address_space=1 << 30)
_ENV = {'LC_ALL': 'C', 'LANG': 'C'}


def _execute(*cmd: str, prlimit: processutils.ProcessLimits | None = None
             ) -> str:
    try:
        out, _err = processutils.execute(*cmd, env_variables=_ENV,
                                         prlimit=prlimit)
    except processutils.ProcessExecutionError as e:
        raise exception.StorageError(
            reason='%s failed (exit %s): %s' % (
                ' '.join(cmd[:2]), e.exit_code, (e.stderr or '').strip())
        ) from e
    except OSError as e:
        raise exception.StorageError(reason='%s: %s' % (cmd[0], e)) from e
    return out


def _check_format(fmt: str | None) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise exception.InvalidInput(reason='unsupported disk format %r'
                                     % (fmt,))


def info(path: str, fmt: str | None = None) -> dict:
    """``qemu-img info --output=json -U`` of ``path`` as a dict.

    ``fmt`` None lets qemu-img probe the format; pass it whenever known.
    """
    _check_format(fmt)
    cmd = ['qemu-img', 'info', '--output=json', '-U']
    if fmt:
        cmd += ['-f', fmt]
    out = _execute(*cmd, path, prlimit=QEMU_IMG_LIMITS)
    try:
        return json.loads(out)
    except ValueError as e:
        raise exception.StorageError(
            reason='unparsable qemu-img info for %s: %s' % (path, e)) from e


def virtual_size(path: str, fmt: str) -> int:
    return int(info(path, fmt)['virtual-size'])


def inspect_untrusted(path: str, expected_format: str | None = None) -> dict:
    """Probe a fetched image and refuse anything unsafe to use as a base.

    Only raw and qcow2 are accepted; a qcow2 with a backing file or an
    external data file is refused (it could make QEMU open host files).
    """
    data = info(path)
    fmt = data.get('format')
    reason = None
    if fmt not in FORMATS:
        reason = 'format %r is not one of %s' % (fmt, ', '.join(FORMATS))
    elif expected_format and fmt != expected_format:
        reason = 'declared format %s but content is %s' % (expected_format,
                                                           fmt)
    elif data.get('backing-filename') or data.get('full-backing-filename'):
        reason = 'image has a backing file'
    elif (data.get('format-specific') or {}).get('data', {}).get('data-file'):
        reason = 'image has an external data file'
    if reason:
        raise exception.StorageError(reason='unsafe image %s: %s'
                                     % (path, reason))
    return data


def convert(src: str, dest: str, src_format: str, out_format: str = 'raw',
            sparse: bool = True) -> None:
    """``qemu-img convert`` ``src`` to a new ``dest`` (sparse by default)."""
    _check_format(src_format)
    _check_format(out_format)
    cmd = ['qemu-img', 'convert', '-f', src_format, '-O', out_format]
    cmd += ['-S', '4k'] if sparse else ['-S', '0']
    _execute(*cmd, src, dest)


def create(path: str, size_bytes: int, fmt: str = 'qcow2') -> None:
    """A new empty image of ``size_bytes``."""
    _check_format(fmt)
    _execute('qemu-img', 'create', '-f', fmt, path, str(int(size_bytes)))


def create_overlay(base: str, dest: str, size_bytes: int | None = None,
                   base_format: str = 'raw') -> None:
    """A qcow2 ``dest`` backed by ``base`` (absolute path, format explicit)."""
    _check_format(base_format)
    if not os.path.isabs(base):
        raise exception.InvalidInput(reason='backing file must be absolute')
    cmd = ['qemu-img', 'create', '-f', 'qcow2', '-F', base_format, '-b', base,
           dest]
    if size_bytes is not None:
        cmd.append(str(int(size_bytes)))
    _execute(*cmd)


def resize(path: str, size_bytes: int, fmt: str) -> None:
    """Grow ``path`` to ``size_bytes`` (never shrinks)."""
    _check_format(fmt)
    _execute('qemu-img', 'resize', '-f', fmt, path, str(int(size_bytes)))


def write_pattern(path: str, fmt: str, pattern: int, offset: int,
                  length: int) -> None:
    """Write the byte ``pattern`` over ``length`` bytes at ``offset``."""
    _check_format(fmt)
    _execute('qemu-io', '-f', fmt, '-c',
             'write -P 0x%02x %d %d' % (pattern, offset, length), path)


def verify_pattern(path: str, fmt: str, pattern: int, offset: int,
                   length: int) -> bool:
    """True when ``length`` bytes at ``offset`` all equal ``pattern``."""
    _check_format(fmt)
    try:
        processutils.execute(
            'qemu-io', '-r', '-U', '-f', fmt, '-c',
            'read -P 0x%02x %d %d' % (pattern, offset, length), path,
            env_variables=_ENV)
    except processutils.ProcessExecutionError:
        return False
    return True


def qcow2_backing_file(path: str) -> str | None:
    """The backing file name recorded in a qcow2 header, read directly.

    No subprocess and no format probing: the header fields are read with
    ``struct`` (magic, version, backing_file_offset, backing_file_size).
    Returns None when ``path`` is not qcow2 or has no backing file.
    """
    try:
        with open(path, 'rb') as f:
            header = f.read(20)
            if len(header) < 20 or header[:4] != QCOW2_MAGIC:
                return None
            _ver, offset, size = struct.unpack('>IQI', header[4:20])
            if offset == 0 or size == 0 or size > 1023:
                return None
            f.seek(offset)
            raw = f.read(size)
    except OSError as e:
        LOG.warning('Cannot read qcow2 header of %(path)s: %(err)s',
                    {'path': path, 'err': e})
        return None
    return raw.decode('utf-8', errors='replace')


def backing_chain(path: str, max_depth: int = 16) -> list[str]:
    """Backing files of a qcow2 ``path``, nearest first (from the headers).

    Relative names are resolved against the referring file's directory,
    as QEMU does; the walk stops at the first file that is not qcow2.
    """
    chain: list[str] = []
    for _depth in range(max_depth):
        backing = qcow2_backing_file(path)
        if not backing:
            break
        if not os.path.isabs(backing):
            backing = os.path.join(os.path.dirname(path), backing)
        chain.append(backing)
        path = backing
    return chain
