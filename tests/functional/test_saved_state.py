"""What a saved memory state records about its saving host, and the check
that refuses to restore it where it cannot run: real QEMU guests on
qemu:///system, real libvirt save files.

A different host cannot be produced here, so the saved file is made to
say it came from one: libvirt's ``virDomainSaveImageDefineXML`` (the
operator's tool for editing a save file) rewrites the metadata element the
save recorded -- a newer QEMU, a CPU feature this host lacks, another
virtualisation type -- and the check must then name the reason, change
nothing, and accept the file again once the metadata is back."""

import os
import re
import subprocess
import uuid
import xml.etree.ElementTree as ET

import libvirt
import pytest

from lifecycle.virt import domain_xml
from lifecycle.virt import driver as virt_driver
from lifecycle.virt import saved_state

pytestmark = pytest.mark.slow

SAVED_ON = '{%s}saved-on' % saved_state.NAMESPACE
CPU = '{%s}cpu' % saved_state.NAMESPACE


def _spec(disk: str) -> domain_xml.DomainSpec:
    return domain_xml.DomainSpec(
        uuid=str(uuid.uuid4()), display_name='saved-state', vcpus=1,
        memory_mb=64, disk_path=disk, disk_format='qcow2', host='host-a1',
        user_id='user', project_id='project', flavor_name='tiny')


@pytest.fixture
def saved(qemu_dir, system_libvirt_uri):
    """A guest saved by the driver on this host: (driver, path, spec)."""
    disk = os.path.join(qemu_dir, 'disk')
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', disk, '64M'],
                   check=True, capture_output=True)
    os.chmod(disk, 0o666)
    drv = virt_driver.LibvirtDriver(system_libvirt_uri)
    drv.connect()
    spec = _spec(disk)
    drv.spawn(spec)
    path = os.path.join(qemu_dir, 'memory.save')
    try:
        drv.save_memory(spec.uuid, path, host='host-a1')
        yield drv, path, spec
    finally:
        drv.undefine(spec.uuid)
        drv.close()


def _saved_on(uri: str, path: str) -> tuple[str, ET.Element]:
    conn = libvirt.open(uri)
    try:
        text = conn.saveImageGetXMLDesc(path, 0)
    finally:
        conn.close()
    element = ET.fromstring(text).find('metadata/' + SAVED_ON)
    assert element is not None, text
    return text, element


def rewrite_saved_on(uri: str, path: str, edit) -> None:
    """The save file's domain XML with its saved-on element edited by
    ``edit`` (also used by test_hibernate)."""
    text, element = _saved_on(uri, path)
    edit(element)
    new = re.sub(r'<lifecycle-saved-on:saved-on .*?</lifecycle-saved-on:'
                 r'saved-on>|<lifecycle-saved-on:saved-on [^>]*/>',
                 lambda _: ET.tostring(element, encoding='unicode'),
                 text, count=1, flags=re.S)
    assert new != text
    conn = libvirt.open(uri)
    try:
        conn.saveImageDefineXML(path, new, 0)
    finally:
        conn.close()


def test_the_save_records_its_host_and_restores_here(saved,
                                                     system_libvirt_uri):
    drv, path, spec = saved
    _, element = _saved_on(system_libvirt_uri, path)
    conn = libvirt.open(system_libvirt_uri)
    version = conn.getVersion()
    conn.close()
    assert element.get('host') == 'host-a1'
    assert element.get('virt_type') == drv.virt_type
    assert element.get('qemu') == saved_state.version_text(version)
    if drv.virt_type == 'kvm':
        assert element.find(CPU) is not None

    assert drv.restore_blocker(path) is None
    drv.restore_memory(spec, path)
    assert drv.get_power_state(spec.uuid) == 1      # running again


def test_a_newer_qemu_blocks_and_nothing_changes(saved, system_libvirt_uri):
    drv, path, spec = saved
    _, element = _saved_on(system_libvirt_uri, path)
    original = element.get('qemu')
    size = os.path.getsize(path)
    rewrite_saved_on(system_libvirt_uri, path,
             lambda e: e.set('qemu', '999.0.0'))

    reason = drv.restore_blocker(path)
    assert reason == ('it was saved by QEMU 999.0.0 on host-a1, this host '
                      'has the older QEMU %s' % original)
    assert os.path.getsize(path) == size              # the file is kept
    assert drv.get_power_state(spec.uuid) != 1        # nothing started

    rewrite_saved_on(system_libvirt_uri, path,
                     lambda e: e.set('qemu', original))
    assert drv.restore_blocker(path) is None
    drv.restore_memory(spec, path)
    assert drv.get_power_state(spec.uuid) == 1


def test_another_virt_type_blocks(saved, system_libvirt_uri):
    drv, path, _ = saved
    other = 'qemu' if drv.virt_type == 'kvm' else 'kvm'
    rewrite_saved_on(system_libvirt_uri, path,
                     lambda e: e.set('virt_type', other))
    assert drv.restore_blocker(path) == (
        'it was saved under %s on host-a1, this host runs guests with %s'
        % (other, drv.virt_type))


def test_a_cpu_feature_this_host_lacks_blocks(saved, system_libvirt_uri):
    drv, path, _ = saved
    if drv.virt_type != 'kvm':
        pytest.skip('TCG emulates the CPU: only the QEMU version matters '
                    '(a property of the host, not a missing service)')

    def add_feature(element):
        cpu = element.find(CPU)
        for name in ('amx-tile', 'avx512-fp16'):
            ET.SubElement(cpu, '{%s}feature' % saved_state.NAMESPACE,
                          policy='require', name=name)
    rewrite_saved_on(system_libvirt_uri, path, add_feature)
    reason = drv.restore_blocker(path)
    assert reason is not None and reason.startswith(
        'the CPU of host-a1 offered features this host cannot virtualise'), \
        reason


def test_a_damaged_file_blocks(saved):
    drv, path, _ = saved
    with open(path, 'r+b') as f:
        f.write(b'\0' * 64)             # the header's magic and lengths
    reason = drv.restore_blocker(path)
    assert reason is not None and reason.startswith(
        'its domain XML cannot be read'), reason
