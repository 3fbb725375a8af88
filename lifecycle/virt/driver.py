"""Libvirt driver: define, start, stop and undefine instance domains.

Methods are keyed by instance UUID (== domain UUID) and idempotent; the driver
never deletes disk files. A lock guards the lazily opened connection, which a
call reopens once when it finds it broken; calls run unlocked (libvirt
connections are thread-safe), so a long ``power_off`` poll blocks no one.
All ``test:///default`` connections of a process share one in-memory
hypervisor, which libvirt frees when the last of them closes.
"""

import contextlib
import os
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import TypeVar

import libvirt
from oslo_log import log as logging

from lifecycle import exception
from lifecycle import states
from lifecycle.virt import domain_xml
from lifecycle.virt import saved_state

LOG = logging.getLogger(__name__)

TEST_URI = 'test:///default'
_T = TypeVar('_T')
_POLL_INTERVAL = 0.2
_POWER_STATE = {  # Nova's mapping
    libvirt.VIR_DOMAIN_RUNNING: states.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: states.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: states.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: states.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: states.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: states.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: states.SUSPENDED,
}  # anything else: NOSTATE
_CONNECTION_ERRORS = (libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_NO_CONNECT)
# Everything a definition owns besides its disks, tried most-first: the test
# driver rejects NVRAM/CHECKPOINTS_METADATA with VIR_ERR_INVALID_ARG.
_BASIC_UNDEFINE = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                   | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
_UNDEFINE_FLAGS = (_BASIC_UNDEFINE | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                   | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA,
                   _BASIC_UNDEFINE, 0)
_LOCAL_HOSTS = (None, '', 'localhost', '127.0.0.1', '::1')

# libvirt's default error handler prints every error to stderr.
libvirt.registerErrorHandler(lambda *args: None, None)


def _message(exc: libvirt.libvirtError) -> str:
    return exc.get_error_message() or str(exc)


def _lookup(conn: libvirt.virConnect, uuid: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def _is_active(dom: libvirt.virDomain | None) -> bool:
    try:
        return dom is not None and bool(dom.isActive())
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:  # transient
            return False
        raise


def _start(dom: libvirt.virDomain) -> None:
    """Start ``dom`` unless it runs (also when a racing caller started it)."""
    if _is_active(dom):
        return
    try:
        dom.create()
    except libvirt.libvirtError:
        # A racing start wins with "already running", reported as an
        # invalid operation or (the test driver, some QEMU paths) as an
        # internal error: whatever the code, running is what was asked.
        if not _is_active(dom):
            raise


def _with_running_flag(call: Callable[[int], object]) -> None:
    """``call(VIR_DOMAIN_SAVE_RUNNING)`` (resume running whatever the
    saved state says), else ``call(0)`` where the flag is refused (the test
    driver; its saved guest was running, so it resumes running too)."""
    try:
        call(libvirt.VIR_DOMAIN_SAVE_RUNNING)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
            raise
        call(0)


def _is_broken(conn: libvirt.virConnect, exc: libvirt.libvirtError) -> bool:
    if exc.get_error_code() in _CONNECTION_ERRORS:
        return True
    try:
        return not conn.isAlive()
    except libvirt.libvirtError:
        return True


def _kvm_device_usable() -> bool:
    """/dev/kvm read-writable by us, or by QEMU through its group."""
    try:
        st = os.stat('/dev/kvm')
    except OSError:
        return False
    group_rw = stat.S_IRGRP | stat.S_IWGRP
    return stat.S_ISCHR(st.st_mode) and (
        os.access('/dev/kvm', os.R_OK | os.W_OK)
        or st.st_mode & group_rw == group_rw)


class LibvirtDriver:
    """Instance domains on one libvirt connection."""

    def __init__(self, uri: str, virt_type: str = 'auto') -> None:
        if virt_type not in ('auto', *domain_xml.VIRT_TYPES):
            raise exception.InvalidConfiguration(
                reason=f'[libvirt] virt_type {virt_type!r} is not auto, kvm '
                       'or qemu')
        self.uri = uri
        self._requested_virt_type = virt_type
        self._virt_type: str | None = None
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()

    def _open(self) -> libvirt.virConnect:
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise exception.HypervisorUnavailable(
                uri=self.uri, reason=_message(exc)) from exc
        LOG.debug('Connected to %s', self.uri)
        return conn

    def _connection(self, broken: libvirt.virConnect | None = None
                    ) -> libvirt.virConnect:
        with self._lock:
            if broken is not None and self._conn is broken:
                self._conn = None
                with contextlib.suppress(libvirt.libvirtError):
                    broken.close()
            if self._conn is None:
                self._conn = self._open()
            return self._conn

    def connect(self) -> None:
        """Open the connection now; raises HypervisorUnavailable."""
        self._connection()

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def _run(self, operation: str, uuid: str | None,
             fn: Callable[[libvirt.virConnect], _T]) -> _T:
        """``fn(conn)``, retried once on a reopened connection if broken
        (so ``fn`` must be idempotent); libvirt errors -> VirtDriverError."""
        conn = self._connection()
        try:
            try:
                return fn(conn)
            except libvirt.libvirtError as exc:
                if not _is_broken(conn, exc):
                    raise
                LOG.warning('Connection to %(uri)s broken during %(op)s '
                            '(%(err)s); reopening it',
                            {'uri': self.uri, 'op': operation,
                             'err': _message(exc)})
                return fn(self._connection(broken=conn))
        except libvirt.libvirtError as exc:
            raise exception.VirtDriverError(
                operation=operation, instance_uuid=uuid,
                reason=_message(exc)) from exc

    @property
    def virt_type(self) -> str:
        """'kvm' or 'qemu'; 'auto' resolved on first use."""
        if self._virt_type is None:
            self._virt_type = self._resolve_virt_type()
        return self._virt_type

    def _resolve_virt_type(self) -> str:
        if self.uri.startswith('test:'):
            return 'qemu'
        if self._requested_virt_type != 'auto':
            return self._requested_virt_type
        local = urllib.parse.urlsplit(self.uri).hostname in _LOCAL_HOSTS
        if local and not _kvm_device_usable():
            LOG.info('/dev/kvm is not usable: guests on %s use qemu (TCG)',
                     self.uri)
            return 'qemu'
        try:
            self._run('getDomainCapabilities', None,
                      lambda c: c.getDomainCapabilities(virttype='kvm'))
        except exception.VirtDriverError as exc:
            LOG.info('%(uri)s offers no KVM (%(err)s): guests use qemu (TCG)',
                     {'uri': self.uri, 'err': exc.kwargs['reason']})
            return 'qemu'
        return 'kvm'

    def get_host_capacity(self) -> dict:
        def _do(conn: libvirt.virConnect) -> dict:
            info = conn.getInfo()  # [model, memory MiB, cpus, ...]
            return {'vcpus': info[2], 'memory_mb': info[1],
                    'hypervisor_type': conn.getType(),
                    'hypervisor_hostname': conn.getHostname()}
        return self._run('getInfo', None, _do)

    def list_instance_uuids(self, host: str | None = None) -> list[str]:
        """Sorted UUIDs of domains with our metadata (of ``host`` if set)."""
        def _do(conn: libvirt.virConnect) -> list[str]:
            found = []
            for dom in conn.listAllDomains(0):
                try:
                    xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                                       domain_xml.NAMESPACE, 0)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() in (
                            libvirt.VIR_ERR_NO_DOMAIN_METADATA,
                            libvirt.VIR_ERR_NO_DOMAIN):
                        continue
                    raise
                meta = domain_xml.parse_owner_metadata(xml)
                if meta and host in (None, meta.get('host')):
                    found.append(dom.UUIDString())
            return sorted(found)
        return self._run('listAllDomains', None, _do)

    def exists(self, uuid: str) -> bool:
        return self._run('lookup', uuid,
                         lambda c: _lookup(c, uuid) is not None)

    def _active(self, uuid: str) -> bool:
        return self._run('isActive', uuid,
                         lambda c: _is_active(_lookup(c, uuid)))

    def get_power_state(self, uuid: str) -> int:
        """Nova's power state; NOSTATE when there is no domain."""
        def _do(conn: libvirt.virConnect) -> int:
            dom = _lookup(conn, uuid)
            state = libvirt.VIR_DOMAIN_NOSTATE if dom is None \
                else dom.state()[0]
            return _POWER_STATE.get(state, states.NOSTATE)
        return self._run('state', uuid, _do)

    def get_disk_paths(self, uuid: str) -> list[str]:
        """Source paths of the domain's disks; DomainNotFound if absent."""
        def _do(conn: libvirt.virConnect) -> str | None:
            dom = _lookup(conn, uuid)
            return None if dom is None else dom.XMLDesc(0)
        xml = self._run('XMLDesc', uuid, _do)
        if xml is None:
            raise exception.DomainNotFound(instance_uuid=uuid)
        return domain_xml.parse_disk_paths(xml)

    def spawn(self, spec: domain_xml.DomainSpec) -> None:
        """Define and start. No-op if running; a shut-off domain is
        redefined from ``spec`` (current host metadata and disk) and started.
        """
        xml = domain_xml.build_domain_xml(spec, self.virt_type)

        def _do(conn: libvirt.virConnect) -> None:
            if _is_active(_lookup(conn, spec.uuid)):
                LOG.debug('Domain of %s is already running', spec.uuid)
                return
            _start(conn.defineXML(xml))
            LOG.info('Started domain of instance %(uuid)s (%(type)s, '
                     '%(uri)s)', {'uuid': spec.uuid, 'type': self.virt_type,
                                  'uri': self.uri})
        self._run('spawn', spec.uuid, _do)

    def power_on(self, uuid: str) -> None:
        """Start the defined domain; no-op if running; DomainNotFound."""
        def _do(conn: libvirt.virConnect) -> bool:
            dom = _lookup(conn, uuid)
            if dom is not None:
                _start(dom)
            return dom is not None
        if not self._run('power_on', uuid, _do):
            raise exception.DomainNotFound(instance_uuid=uuid)

    def _destroy(self, uuid: str) -> None:
        def _do(conn: libvirt.virConnect) -> None:
            dom = _lookup(conn, uuid)
            try:
                if _is_active(dom):
                    dom.destroy()
            except libvirt.libvirtError:
                if _is_active(dom):  # else it stopped by itself meanwhile
                    raise
        self._run('destroy', uuid, _do)

    def power_off(self, uuid: str, timeout: float) -> bool:
        """Stop the guest; True if it shut down cleanly.

        Asks the guest to shut down (ACPI) and polls up to ``timeout``
        seconds, then destroys it and returns False; ``timeout <= 0``
        destroys at once (False). Absent or stopped: no-op, True.
        """
        if not self._active(uuid):
            return True
        if timeout > 0:
            def _shutdown(conn: libvirt.virConnect) -> None:
                dom = _lookup(conn, uuid)
                if _is_active(dom):
                    dom.shutdown()
            try:
                self._run('shutdown', uuid, _shutdown)
            except exception.VirtDriverError as exc:
                LOG.warning('Clean shutdown of %(uuid)s failed: %(err)s',
                            {'uuid': uuid, 'err': exc.kwargs['reason']})
            deadline = time.monotonic() + timeout
            while True:
                if not self._active(uuid):
                    LOG.info('Instance %s shut down cleanly', uuid)
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(_POLL_INTERVAL, remaining))
            LOG.warning('Instance %(uuid)s did not shut down within '
                        '%(timeout)ss; destroying it',
                        {'uuid': uuid, 'timeout': timeout})
        self._destroy(uuid)
        return False

    def save_memory(self, uuid: str, path: str, host: str = '') -> None:
        """Save the running guest's memory and device state to ``path``
        and stop it (libvirt save); the definition and the disks stay.
        The file's domain XML says what the saving ``host`` offers
        (:mod:`saved_state`), for :meth:`restore_blocker` elsewhere.

        Whether the file is compressed is the host's choice
        (``save_image_format`` in libvirt's qemu.conf). Idempotent: a
        domain that no longer runs, with ``path`` present, was saved.
        DomainNotFound when there is no domain; VirtDriverError when it is
        shut off with no saved state (nothing to save).
        """
        def _do(conn: libvirt.virConnect) -> str:
            dom = _lookup(conn, uuid)
            if dom is None:
                return 'absent'
            if not _is_active(dom):
                return 'saved' if os.path.exists(path) else 'stopped'
            try:
                dom.setMetadata(
                    libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                    saved_state.saved_on_xml(conn, self.virt_type, host),
                    saved_state.PREFIX, saved_state.NAMESPACE,
                    libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as exc:
                if _is_broken(conn, exc):
                    raise
                # Without it, the restore elsewhere decides alone.
                LOG.warning('Instance %(uuid)s: cannot record the saving '
                            'host in its state (%(err)s)',
                            {'uuid': uuid, 'err': _message(exc)})
            _with_running_flag(lambda flags: dom.saveFlags(path, None,
                                                           flags))
            return 'saved'
        outcome = self._run('save', uuid, _do)
        if outcome == 'absent':
            raise exception.DomainNotFound(instance_uuid=uuid)
        if outcome == 'stopped':
            raise exception.VirtDriverError(
                operation='save', instance_uuid=uuid,
                reason='the guest is not running and %s does not exist'
                       % path)
        LOG.info('Saved the memory of instance %(uuid)s to %(path)s',
                 {'uuid': uuid, 'path': path})

    def restore_blocker(self, path: str) -> str | None:
        """Why the state saved in ``path`` cannot be restored on this host
        (another QEMU, machine type, virtualisation type or CPU; an
        unreadable file), or None. Changes nothing."""
        return self._run('check saved state', None,
                         lambda conn: saved_state.restore_blocker(
                             conn, path, self.virt_type))

    def restore_memory(self, spec: domain_xml.DomainSpec, path: str) -> None:
        """Define the domain from ``spec`` and resume it from the state
        saved in ``path``; no-op if it already runs.

        The domain XML given to libvirt is this host's (``spec``: host
        metadata, disk path), so a state saved on another host of the
        storage group resumes here. SavedStateUnusable when libvirt or QEMU
        cannot use the file; then nothing runs and the definition is the
        cold-boot one, so the caller can start it from its disk instead.
        The file is never deleted here.
        """
        xml = domain_xml.build_domain_xml(spec, self.virt_type)

        def _do(conn: libvirt.virConnect) -> None:
            if _is_active(_lookup(conn, spec.uuid)):
                return
            conn.defineXML(xml)
            try:
                _with_running_flag(lambda flags: conn.restoreFlags(
                    path, xml, flags))
            except libvirt.libvirtError as exc:
                unsupported = libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED
                if exc.get_error_code() != unsupported:
                    raise
                # A driver that restores only the saved definition (the
                # test driver): ours is the same but for the owner
                # metadata, which is then set on the running guest.
                _with_running_flag(lambda flags: conn.restoreFlags(
                    path, None, flags))
                _lookup(conn, spec.uuid).setMetadata(
                    libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                    domain_xml.owner_metadata_xml(spec), domain_xml.PREFIX,
                    domain_xml.NAMESPACE,
                    libvirt.VIR_DOMAIN_AFFECT_LIVE
                    | libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        try:
            self._run('restore', spec.uuid, _do)
        except exception.VirtDriverError as exc:
            if self._active(spec.uuid):
                return  # it did resume (the call raced or reported late)
            raise exception.SavedStateUnusable(
                path=path, instance_uuid=spec.uuid,
                reason=exc.kwargs['reason']) from exc
        LOG.info('Resumed instance %(uuid)s from %(path)s',
                 {'uuid': spec.uuid, 'path': path})

    def undefine(self, uuid: str) -> None:
        """Destroy if running, then undefine (with managed save, snapshot
        and checkpoint metadata and NVRAM). Disk files stay. No-op if absent.
        """
        self._destroy(uuid)

        def _do(conn: libvirt.virConnect) -> None:
            dom = _lookup(conn, uuid)
            if dom is None:
                return
            try:
                if not dom.isPersistent():
                    return
            except libvirt.libvirtError as exc:
                # Undefined by someone else (a delete still running) since
                # the lookup: what was asked for is done.
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return
                raise
            for flags in _UNDEFINE_FLAGS:
                try:
                    dom.undefineFlags(flags)
                    break
                except libvirt.libvirtError as exc:
                    code = exc.get_error_code()
                    if code == libvirt.VIR_ERR_NO_DOMAIN:
                        return
                    if flags == 0 or code not in (libvirt.VIR_ERR_INVALID_ARG,
                                                  libvirt.VIR_ERR_NO_SUPPORT):
                        raise
            LOG.info('Undefined domain of instance %s', uuid)
        self._run('undefine', uuid, _do)


def open_driver(uri: str, virt_type: str = 'auto',
                fall_back_to_test: bool = False) -> LibvirtDriver:
    """A connected driver on ``uri``, else (if allowed, with a warning) on
    test:///default; else HypervisorUnavailable."""
    driver = LibvirtDriver(uri, virt_type)
    try:
        driver.connect()
        return driver
    except exception.HypervisorUnavailable as exc:
        if not fall_back_to_test or uri == TEST_URI:
            raise
        LOG.warning('Cannot open libvirt connection %(uri)s (%(err)s); '
                    'falling back to %(test)s: guests will not really run',
                    {'uri': uri, 'err': exc.kwargs.get('reason'),
                     'test': TEST_URI})
    fallback = LibvirtDriver(TEST_URI, 'qemu')
    fallback.connect()
    return fallback
