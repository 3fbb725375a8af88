"""Fixtures shared by every test tier.

External services (libvirtd, PostgreSQL, MariaDB, RabbitMQ) are real. When one
is unreachable a test that needs it is skipped with a message on a laptop,
but **fails** when ``CI=true``: CI promises those services, so a missing one is
a broken environment, not a reason to pass.
"""

import os
import shutil
import socket
import tempfile
import uuid

import pytest

IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def require(available: bool, what: str) -> None:
    """Fail under CI, skip elsewhere, when a real dependency is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail('%s is required under CI=true but is not available' % what,
                    pytrace=False)
    pytest.skip('%s is not available here' % what)


def tcp_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture
def qemu_dir():
    """A directory the ``libvirt-qemu`` user can traverse and read.

    pytest's ``tmp_path`` lives under a 0700 directory, which QEMU started by
    ``qemu:///system`` cannot enter; this one is 0755 under /var/tmp.
    """
    path = tempfile.mkdtemp(prefix='lifecycle-test-', dir='/var/tmp')
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='session')
def system_libvirt_uri():
    """``qemu:///system`` when libvirtd answers there (else skip/fail)."""
    uri = 'qemu:///system'
    try:
        import libvirt
        conn = libvirt.open(uri)
        conn.close()
        ok = True
    except Exception:  # any failure means "not usable here"
        ok = False
    require(ok, 'libvirtd at %s' % uri)
    return uri


def live_domain(uri: str, instance_uuid: str) -> dict | None:
    """The guest as libvirt itself sees it, not as the API reports it:
    ``running`` and its disk ``disks``; None when libvirt has no such
    domain."""
    import xml.etree.ElementTree as ET

    import libvirt
    conn = libvirt.open(uri)
    try:
        try:
            dom = conn.lookupByUUIDString(instance_uuid)
        except libvirt.libvirtError:
            return None
        tree = ET.fromstring(dom.XMLDesc())
        return {'running': dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING,
                'disks': [s.get('file') for s in
                          tree.findall('./devices/disk/source')]}
    finally:
        conn.close()


@pytest.fixture
def new_uuid():
    return str(uuid.uuid4())
