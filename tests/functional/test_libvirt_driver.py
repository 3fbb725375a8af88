"""LibvirtDriver against real libvirt: the test driver, then qemu:///system.

No mocks: every check also looks through a separate libvirt connection.
Domains of ``test:///default`` are shared by the whole process (other tests
use it too), so each test uses its own host names and UUIDs.
"""

import hashlib
import logging
import os
import subprocess
import threading
import time
import uuid

import libvirt
import pytest

from lifecycle import exception
from lifecycle import states
from lifecycle.virt import domain_xml
from lifecycle.virt import driver

TEST_URI = 'test:///default'
HOSTILE = '<script>&\'"$(rm -rf /)'


def _spec(disk_path: str, host: str, **overrides) -> domain_xml.DomainSpec:
    values = dict(uuid=str(uuid.uuid4()), display_name='vm', vcpus=1,
                  memory_mb=64, disk_path=disk_path, disk_format='qcow2',
                  host=host, user_id='user-1', project_id='project-1',
                  flavor_name='m1.tiny')
    values.update(overrides)
    return domain_xml.DomainSpec(**values)


def _remove_domain(conn: libvirt.virConnect, instance_uuid: str) -> None:
    try:
        dom = conn.lookupByUUIDString(instance_uuid)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    if dom.isPersistent():
        dom.undefine()


def _digest(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def observer():
    """An independent connection to the test driver.

    It also keeps ``test:///default`` alive: libvirt frees its state when
    the last connection closes.
    """
    conn = libvirt.open(TEST_URI)
    yield conn
    conn.close()


@pytest.fixture
def host():
    return 'host-%s' % uuid.uuid4().hex[:8]


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / 'disk'
    path.write_bytes(b'retained root disk\x00' * 64)
    return str(path)


@pytest.fixture
def drv(observer, host):
    """A driver on the test driver; removes the domains of ``host*``."""
    d = driver.LibvirtDriver(TEST_URI)
    yield d
    for dom in observer.listAllDomains(0):
        meta = domain_xml.parse_owner_metadata(dom.XMLDesc(0))
        if (meta.get('host') or '').startswith(host):
            _remove_domain(observer, dom.UUIDString())
    d.close()


def test_virt_type_of_test_uri_is_qemu():
    assert driver.LibvirtDriver(TEST_URI).virt_type == 'qemu'
    assert driver.LibvirtDriver(TEST_URI, 'kvm').virt_type == 'qemu'
    with pytest.raises(exception.InvalidConfiguration):
        driver.LibvirtDriver(TEST_URI, 'xen')


def test_spawn_runs_domain(drv, observer, disk, host):
    spec = _spec(disk, host, display_name=HOSTILE)
    drv.spawn(spec)

    dom = observer.lookupByUUIDString(spec.uuid)
    assert dom.isActive()
    assert dom.name() == 'instance-' + spec.uuid
    meta = domain_xml.parse_owner_metadata(dom.XMLDesc(0))
    assert meta['display_name'] == HOSTILE
    assert (meta['host'], meta['uuid']) == (host, spec.uuid)
    assert drv.exists(spec.uuid)
    assert drv.get_power_state(spec.uuid) == states.RUNNING
    assert drv.get_disk_paths(spec.uuid) == [disk]


def test_spawn_is_idempotent(drv, observer, disk, host):
    spec = _spec(disk, host)
    drv.spawn(spec)
    dom_id = observer.lookupByUUIDString(spec.uuid).ID()
    drv.spawn(spec)
    dom = observer.lookupByUUIDString(spec.uuid)
    assert dom.isActive() and dom.ID() == dom_id   # not restarted

    dom.destroy()   # defined but shut off: spawn starts it again
    drv.spawn(spec)
    assert drv.get_power_state(spec.uuid) == states.RUNNING


def test_concurrent_spawns_of_one_instance(drv, observer, disk, host):
    spec = _spec(disk, host)
    barrier = threading.Barrier(8)
    errors = []

    def spawn():
        barrier.wait()
        try:
            drv.spawn(spec)
        except Exception as exc:  # collected for the assert
            errors.append(exc)

    threads = [threading.Thread(target=spawn) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert observer.lookupByUUIDString(spec.uuid).isActive()


def test_spawn_failure_raises_with_libvirt_message(drv, observer, disk,
                                                   host):
    spec = _spec(disk, host)
    # another domain already holds this instance's name
    squatter = observer.defineXML(
        "<domain type='test'><name>instance-%s</name><memory>1024</memory>"
        "<os><type>hvm</type></os></domain>" % spec.uuid)
    try:
        with pytest.raises(exception.VirtDriverError) as err:
            drv.spawn(spec)
        assert err.value.kwargs['operation'] == 'spawn'
        assert err.value.kwargs['instance_uuid'] == spec.uuid
        assert 'already exists' in err.value.kwargs['reason']
    finally:
        squatter.undefine()


def test_power_off_and_on(drv, observer, disk, host):
    spec = _spec(disk, host)
    drv.spawn(spec)

    assert drv.power_off(spec.uuid, timeout=5) is True
    assert drv.get_power_state(spec.uuid) == states.SHUTDOWN
    assert not observer.lookupByUUIDString(spec.uuid).isActive()
    assert drv.power_off(spec.uuid, timeout=5) is True   # no-op

    drv.power_on(spec.uuid)
    drv.power_on(spec.uuid)   # no-op
    assert drv.get_power_state(spec.uuid) == states.RUNNING
    assert observer.lookupByUUIDString(spec.uuid).isActive()

    assert drv.power_off(spec.uuid, timeout=0) is False   # destroyed
    assert drv.get_power_state(spec.uuid) == states.SHUTDOWN


def test_absent_domain(drv):
    missing = str(uuid.uuid4())
    assert not drv.exists(missing)
    assert drv.get_power_state(missing) == states.NOSTATE
    assert drv.power_off(missing, timeout=1) is True
    drv.undefine(missing)
    with pytest.raises(exception.DomainNotFound):
        drv.power_on(missing)
    with pytest.raises(exception.DomainNotFound):
        drv.get_disk_paths(missing)


def test_undefine_keeps_disk(drv, observer, disk, host):
    spec = _spec(disk, host)
    before = _digest(disk)
    drv.spawn(spec)

    drv.undefine(spec.uuid)   # running: destroyed first
    assert not drv.exists(spec.uuid)
    assert drv.get_power_state(spec.uuid) == states.NOSTATE
    with pytest.raises(libvirt.libvirtError):
        observer.lookupByUUIDString(spec.uuid)
    drv.undefine(spec.uuid)   # no-op
    assert _digest(disk) == before


def test_undefine_of_a_domain_removed_meanwhile_is_a_no_op(
        drv, observer, disk, host, monkeypatch):
    """A delete still running undefines the domain between undefine's
    lookup and its isPersistent() (stop 31's CI, at a test's teardown).
    The handle is a real one of a domain that is really gone; only the
    moment is arranged, by handing undefine that handle as its lookup."""
    spec = _spec(disk, host)
    drv.spawn(spec)
    stale = observer.lookupByUUIDString(spec.uuid)
    _remove_domain(observer, spec.uuid)
    with pytest.raises(libvirt.libvirtError):
        stale.isPersistent()  # the failure the driver must absorb
    monkeypatch.setattr(driver, '_lookup', lambda conn, uuid: stale)
    drv.undefine(spec.uuid)
    with pytest.raises(libvirt.libvirtError):
        observer.lookupByUUIDString(spec.uuid)


def test_list_instance_uuids_by_host(drv, observer, disk, host):
    other = host + '-other'
    mine = sorted(_spec(disk, host).uuid for _ in range(2))
    for instance_uuid in mine:
        drv.spawn(_spec(disk, host, uuid=instance_uuid))
    theirs = _spec(disk, other)
    drv.spawn(theirs)
    drv.power_off(mine[0], timeout=0)   # stopped domains are listed too
    # a domain without our metadata is never listed
    foreign = observer.defineXML(
        "<domain type='test'><name>foreign-%s</name><memory>1024</memory>"
        "<os><type>hvm</type></os></domain>" % host)
    foreign.create()
    try:
        assert drv.list_instance_uuids(host) == mine
        assert drv.list_instance_uuids(other) == [theirs.uuid]
        everything = drv.list_instance_uuids()
        assert set(mine) | {theirs.uuid} <= set(everything)
        assert foreign.UUIDString() not in everything
        assert drv.list_instance_uuids('host-none') == []
    finally:
        foreign.destroy()
        foreign.undefine()


def test_host_capacity(drv, observer):
    cap = drv.get_host_capacity()
    info = observer.getInfo()
    assert cap == {'vcpus': info[2], 'memory_mb': info[1],
                   'hypervisor_type': observer.getType(),
                   'hypervisor_hostname': observer.getHostname()}


def test_reopens_broken_connection(drv, observer, disk, host):
    spec = _spec(disk, host)
    drv.spawn(spec)
    drv._conn.close()   # the driver's connection is now unusable
    assert drv.get_power_state(spec.uuid) == states.RUNNING


def test_open_driver_falls_back_to_test(observer, caplog):
    bad = 'qemu+unix:///system?socket=/nonexistent/libvirt-sock'
    with pytest.raises(exception.HypervisorUnavailable):
        driver.open_driver(bad, 'auto', fall_back_to_test=False)

    with caplog.at_level(logging.WARNING, logger='lifecycle.virt.driver'):
        d = driver.open_driver(bad, 'auto', fall_back_to_test=True)
    try:
        assert d.uri == TEST_URI
        assert d.virt_type == 'qemu'
        warnings = [r for r in caplog.records
                    if r.levelno == logging.WARNING]
        assert warnings and bad in warnings[0].getMessage()
        assert '/nonexistent/libvirt-sock' in warnings[0].getMessage()
    finally:
        d.close()


def test_open_driver_connects(observer):
    d = driver.open_driver(TEST_URI, 'auto', fall_back_to_test=False)
    try:
        assert d.uri == TEST_URI and d._conn is not None
    finally:
        d.close()


# -- qemu:///system: real QEMU processes ------------------------------------

def _qemu_pid(name: str) -> int:
    with open('/run/libvirt/qemu/%s.pid' % name) as f:
        return int(f.read().strip())


@pytest.fixture
def system(system_libvirt_uri):
    """A separate connection to qemu:///system; removes test domains."""
    conn = libvirt.open(system_libvirt_uri)
    made: list[str] = []
    yield conn, made
    for instance_uuid in made:
        _remove_domain(conn, instance_uuid)
    conn.close()


@pytest.fixture
def qcow2(qemu_dir):
    path = os.path.join(qemu_dir, 'disk')
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', path, '64M'],
                   check=True, capture_output=True)
    os.chmod(path, 0o644)
    return path


@pytest.mark.slow
@pytest.mark.parametrize('virt_type', ['auto', 'qemu'])
def test_real_guest_lifecycle(system, system_libvirt_uri, qcow2, virt_type):
    conn, made = system
    drv = driver.LibvirtDriver(system_libvirt_uri, virt_type)
    assert drv.virt_type in ('kvm', 'qemu')
    if virt_type == 'qemu':
        assert drv.virt_type == 'qemu'
    spec = _spec(qcow2, 'host-real', display_name=HOSTILE, memory_mb=96)
    made.append(spec.uuid)

    drv.spawn(spec)
    dom = conn.lookupByUUIDString(spec.uuid)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert dom.maxMemory() == 96 * 1024
    pid = _qemu_pid(dom.name())
    with open('/proc/%d/cmdline' % pid, 'rb') as f:
        cmdline = f.read().replace(b'\0', b' ').decode()
    assert 'qemu' in cmdline and qcow2 in cmdline
    assert ('accel=kvm' in cmdline or '-accel kvm' in cmdline) == (
        drv.virt_type == 'kvm')
    assert domain_xml.parse_owner_metadata(dom.XMLDesc(0))[
        'display_name'] == HOSTILE
    drv.spawn(spec)   # idempotent: same process
    assert _qemu_pid(dom.name()) == pid

    started = time.monotonic()
    assert drv.power_off(spec.uuid, timeout=0) is False
    assert time.monotonic() - started < 30
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert not os.path.exists('/proc/%d' % pid)   # reaped by libvirtd

    drv.power_on(spec.uuid)
    assert dom.isActive()
    # no OS answers ACPI: waits the timeout, then destroys
    started = time.monotonic()
    assert drv.power_off(spec.uuid, timeout=1) is False
    assert time.monotonic() - started >= 1
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert drv.get_power_state(spec.uuid) == states.SHUTDOWN

    drv.power_on(spec.uuid)
    drv.undefine(spec.uuid)   # destroys the running guest first
    with pytest.raises(libvirt.libvirtError) as err:
        conn.lookupByUUIDString(spec.uuid)
    assert err.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
    assert os.path.isfile(qcow2)
    info = subprocess.run(['qemu-img', 'info', '--output=json', qcow2],
                          check=True, capture_output=True, text=True).stdout
    assert '"format": "qcow2"' in info
    assert '"virtual-size": 67108864' in info


@pytest.mark.slow
def test_real_list_and_capacity(system, system_libvirt_uri, qcow2):
    conn, made = system
    drv = driver.LibvirtDriver(system_libvirt_uri)
    spec = _spec(qcow2, 'host-real-%s' % uuid.uuid4().hex[:6])
    made.append(spec.uuid)
    drv.spawn(spec)
    assert drv.list_instance_uuids(spec.host) == [spec.uuid]
    assert conn.lookupByUUIDString(spec.uuid).isActive()
    cap = drv.get_host_capacity()
    assert cap['hypervisor_type'] == 'QEMU'
    assert cap['vcpus'] >= 1 and cap['memory_mb'] > 0
    drv.undefine(spec.uuid)
    assert drv.list_instance_uuids(spec.host) == []
