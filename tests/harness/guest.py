"""The counting guest: a real Linux guest whose state visibly matters.

``tools/guest/build.sh`` makes it from Debian's kernel and busybox (see
``tools/guest/init``): booted by direct kernel boot, it prints
``lifecycle-guest: count N uptime U boot B`` on its serial console every
second, writes the count at offset 1 MiB of its first disk, and powers off
on an ACPI power-button press. So a test can tell a guest that kept running
(count and boot id continue) from one that was booted again, read what the
guest wrote, and see a clean shutdown really happen.

The session fixture ``counting_guest`` (tests/functional/guest_fixture.py)
builds it once per machine
(``/var/cache/lifecycle-guest``) and finds out whether KVM can boot it
here: some nested hypervisors run a BIOS-only guest under KVM but hang a
Linux kernel right after its decompressor. Then the guest runs under TCG
(``virt_type='qemu'``), and ``virt_type_reason`` says why.
"""

import dataclasses
import os
import re
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, 'tools', 'guest', 'build.sh')
CACHE = os.environ.get('LIFECYCLE_GUEST_CACHE', '/var/cache/lifecycle-guest')
CMDLINE = 'console=ttyS0 quiet panic=-1'
COUNT_RE = re.compile(r'lifecycle-guest: count (\d+) uptime ([\d.]+) '
                      r'boot ([0-9a-f]+)')
# Offset and format of what the guest writes to its disk.
DISK_COUNT_OFFSET = 1024 * 1024
DISK_COUNT_RE = re.compile(rb'count (\d+) *\n')
KVM_PROBE_SECONDS = 20


@dataclasses.dataclass(frozen=True)
class CountingGuest:
    kernel: str
    initrd: str
    cmdline: str
    virt_type: str             # 'kvm' or 'qemu' (TCG)
    virt_type_reason: str


def build() -> tuple[str | None, str]:
    """(directory with vmlinuz and initrd.img, '') or (None, why not)."""
    try:
        proc = subprocess.run(['bash', BUILD, CACHE], capture_output=True,
                              text=True, timeout=600, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if proc.returncode:
        return None, (proc.stdout + proc.stderr).strip()[-2000:]
    return proc.stdout.strip().splitlines()[-1], ''


def kvm_boots(kernel: str, initrd: str) -> tuple[bool, str]:
    """Boot the guest once under KVM with plain QEMU; True when its init
    speaks within KVM_PROBE_SECONDS."""
    if not os.access('/dev/kvm', os.R_OK | os.W_OK):
        return False, '/dev/kvm is not usable'
    with tempfile.TemporaryDirectory() as tmp:
        serial = os.path.join(tmp, 'serial.log')
        proc = subprocess.Popen(
            ['qemu-system-x86_64', '-accel', 'kvm', '-cpu', 'host',
             '-m', '256', '-kernel', kernel, '-initrd', initrd,
             '-append', CMDLINE, '-display', 'none', '-no-reboot',
             '-serial', 'file:' + serial, '-monitor', 'none'],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + KVM_PROBE_SECONDS
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    return False, 'QEMU with KVM exited (%s)' % proc.returncode
                if os.path.exists(serial):
                    with open(serial, 'rb') as f:
                        if b'lifecycle-guest: booted' in f.read():
                            return True, 'KVM boots the guest'
                time.sleep(0.2)
        finally:
            proc.kill()
            proc.wait()
    return False, ('a Linux guest does not boot under KVM here within %ds '
                   '(nested virtualisation); TCG instead' % KVM_PROBE_SECONDS)


class SerialConsole:
    """What a running domain prints on its serial console, read through
    libvirt (``virDomainOpenConsole``) as ``virsh console`` does.

    A blocking stream read by a thread: without an event loop a
    non-blocking libvirt stream never receives anything."""

    def __init__(self, uri: str, instance_uuid: str) -> None:
        import libvirt
        self._libvirt = libvirt
        self._conn = libvirt.open(uri)
        dom = self._conn.lookupByUUIDString(instance_uuid)
        self._stream = self._conn.newStream(0)
        dom.openConsole(None, self._stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        self._lock = threading.Lock()
        self._chunks: list[str] = []
        self._open = True
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                data = self._stream.recv(4096)
                if not data or data == -2:
                    break
                with self._lock:
                    self._chunks.append(data.decode('utf-8', 'replace'))
        except self._libvirt.libvirtError:
            pass
        finally:
            self._open = False

    @property
    def text(self) -> str:
        with self._lock:
            return ''.join(self._chunks)

    def wait_for(self, pattern: str | re.Pattern, timeout: float,
                 start: int = 0) -> re.Match:
        """The first match of ``pattern`` after offset ``start``."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            still_open = self._open
            match = regex.search(self.text, start)
            if match:
                return match
            if not still_open or time.monotonic() > deadline:
                raise AssertionError(
                    'no %r on the console within %ss (console %s); it '
                    'printed:\n%s' % (regex.pattern, timeout,
                                      'open' if still_open else 'closed',
                                      self.text[-2000:]))
            time.sleep(0.1)

    def counts(self) -> list[tuple[int, float, str]]:
        """Every (count, uptime, boot id) line read so far."""
        return [(int(n), float(up), boot)
                for n, up, boot in COUNT_RE.findall(self.text)]

    def close(self) -> None:
        try:
            self._stream.abort()
        except self._libvirt.libvirtError:
            pass
        self._reader.join(timeout=5)
        self._conn.close()


def disk_count(disk: str, fmt: str = 'qcow2') -> int | None:
    """The count the guest last wrote to ``disk`` (None: nothing there)."""
    out = subprocess.run(
        ['qemu-io', '-f', fmt, '-r', '-U', '-c',
         'read -v %d 32' % DISK_COUNT_OFFSET, disk],
        capture_output=True, text=True, check=True).stdout
    data = bytearray()
    for line in out.splitlines():
        if ':' not in line or line.startswith('read'):
            continue
        hex_part = line.split(':', 1)[1][:49]
        data += bytes.fromhex(hex_part.replace(' ', ''))
    match = DISK_COUNT_RE.match(bytes(data))
    return int(match.group(1)) if match else None
