"""Description of the machine the benchmark ran on."""

import os
import platform
import re
import subprocess
import sys


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ''


def _run(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ''


def _cpu_model() -> str | None:
    match = re.search(r'^model name\s*:\s*(.+)$', _read('/proc/cpuinfo'),
                      re.M)
    return match.group(1).strip() if match else platform.processor() or None


def _mem_total() -> int | None:
    match = re.search(r'^MemTotal:\s*(\d+) kB', _read('/proc/meminfo'), re.M)
    return int(match.group(1)) * 1024 if match else None


def _filesystem(path: str) -> dict:
    out = _run('findmnt', '-n', '-o', 'FSTYPE,SOURCE,TARGET', '-T', path)
    parts = out.split()
    st = os.statvfs(path)
    return {'path': path,
            'fstype': parts[0] if parts else None,
            'device': parts[1] if len(parts) > 1 else None,
            'mount': parts[2] if len(parts) > 2 else None,
            'size_bytes': st.f_blocks * st.f_frsize,
            'free_bytes': st.f_bavail * st.f_frsize}


def _libvirt(uri: str) -> dict:
    info = {'uri': uri}
    try:
        import libvirt
        conn = libvirt.open(uri)
    except Exception as e:
        info['error'] = str(e)
        return info
    try:
        def version(n: int) -> str:
            return '%d.%d.%d' % (n // 1000000, n // 1000 % 1000, n % 1000)
        info['libvirt'] = version(conn.getLibVersion())
        info['hypervisor'] = conn.getType()
        info['hypervisor_version'] = version(conn.getVersion())
        try:
            conn.getDomainCapabilities(virttype='kvm')
            info['kvm'] = True
        except libvirt.libvirtError:
            info['kvm'] = False
    finally:
        conn.close()
    return info


def _git() -> dict:
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    head = _run('git', '-C', root, 'rev-parse', 'HEAD')
    dirty = _run('git', '-C', root, 'status', '--porcelain',
                 '--untracked-files=no', '--', 'lifecycle', 'filters')
    return {'commit': head or None,
            'service_code_modified': bool(dirty),
            'modified_files': dirty.splitlines()[:30]}


def describe(work_dir: str, libvirt_uri: str) -> dict:
    qemu = _run('qemu-system-x86_64', '--version').splitlines()
    qemu_img = _run('qemu-img', '--version').splitlines()
    kvm_dev = os.path.exists('/dev/kvm')
    libvirt_info = _libvirt(libvirt_uri)
    return {
        'cpu_model': _cpu_model(),
        'cpus': os.cpu_count(),
        'memory_bytes': _mem_total(),
        'kernel': platform.release(),
        'os': (re.search(r'^PRETTY_NAME="?([^"\n]+)', _read(
            '/etc/os-release'), re.M) or [None, None])[1],
        'virtualized': 'hypervisor' in _read('/proc/cpuinfo'),
        'acceleration': ('KVM' if kvm_dev and libvirt_info.get('kvm')
                         else 'TCG'),
        'dev_kvm': kvm_dev,
        'libvirt': libvirt_info,
        'qemu': qemu[0] if qemu else None,
        'qemu_img': qemu_img[0] if qemu_img else None,
        'python': sys.version.split()[0],
        'disk': _filesystem(work_dir),
        'git': _git(),
    }
