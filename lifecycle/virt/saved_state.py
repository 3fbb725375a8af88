"""Whether a guest's saved memory state can be restored on this host.

A saved state holds the guest's CPU registers and device state as QEMU of
the saving host produced them. The project's domain XML names no CPU
model, so every guest gets QEMU's default model (``qemu64``) with
``check='none'``: QEMU drops the model's features the host cannot
virtualise, so what the guest really got depends on the saving host's
CPU. A state therefore restores only on a host

* whose QEMU is at least as new as the saving host's (QEMU migrates state
  forward, never back),
* whose QEMU offers the saved machine type (``pc-i440fx-7.2`` ...),
* with the same virtualisation type (KVM or TCG), and
* under KVM, whose CPU can virtualise everything the saving host's could
  (``virConnectCompareHypervisorCPU`` of the saving host's ``host-model``
  CPU on this host: identical or a superset).

What the saving host had is recorded *inside the saved file*: before the
save, an element in this module's namespace is added to the running
domain's metadata, and libvirt keeps the domain XML in the file
(``virDomainSaveImageGetXMLDesc`` reads it back). Nothing can go out of
step with the state: no record in the database, no file beside it. A
file whose XML cannot be read is damaged. These checks run before the
restore defines anything; a state that fails them is not restorable
here and the guest is booted cold from its disk instead.
"""

import xml.etree.ElementTree as ET

import libvirt

NAMESPACE = 'http://openstack.org/xmlns/shelve-lifecycle/saved-on/1.0'
PREFIX = 'lifecycle-saved-on'
ET.register_namespace(PREFIX, NAMESPACE)

_VERSION_NAMES = ('major', 'minor', 'micro')
# Where libvirt's error codes say the check itself cannot be made (the
# test driver, a libvirt without the call): then the restore decides.
_UNSUPPORTED = (libvirt.VIR_ERR_NO_SUPPORT,
                libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED)


def _q(tag: str) -> str:
    return '{%s}%s' % (NAMESPACE, tag)


def version_text(version: int) -> str:
    """libvirt's ``major * 1,000,000 + minor * 1,000 + micro`` as text."""
    return '%d.%d.%d' % (version // 1000000, version // 1000 % 1000,
                         version % 1000)


def _host_model_cpu(conn: libvirt.virConnect, arch: str | None,
                    virt_type: str) -> str | None:
    """This host's ``host-model`` CPU as a custom CPU definition."""
    caps = ET.fromstring(conn.getDomainCapabilities(None, arch, None,
                                                    virt_type, 0))
    mode = caps.find("cpu/mode[@name='host-model']")
    if mode is None or mode.get('supported') != 'yes':
        return None
    cpu = ET.Element('cpu', mode='custom', match='exact')
    model = mode.find('model')
    if model is not None:
        ET.SubElement(cpu, 'model', fallback='forbid').text = model.text
    vendor = mode.find('vendor')
    if vendor is not None:
        ET.SubElement(cpu, 'vendor').text = vendor.text
    for feature in mode.findall('feature'):
        ET.SubElement(cpu, 'feature', policy=feature.get('policy'),
                      name=feature.get('name'))
    return ET.tostring(cpu, encoding='unicode')


def saved_on_xml(conn: libvirt.virConnect, virt_type: str,
                 host: str) -> str:
    """The metadata element saying what the saving host offers, bare (its
    namespace is given to ``virDomainSetMetadata`` apart)."""
    root = ET.Element('saved-on', host=host, virt_type=virt_type,
                      qemu=version_text(conn.getVersion()))
    if virt_type == 'kvm':
        cpu = _host_model_cpu(conn, None, virt_type)
        if cpu is not None:
            root.append(ET.fromstring(cpu))
    return ET.tostring(root, encoding='unicode')


def _bare_xml(element: ET.Element) -> str:
    """``element`` as XML with its tags out of any namespace."""
    copy = ET.fromstring(ET.tostring(element))
    for node in copy.iter():
        node.tag = node.tag.rsplit('}', 1)[-1]
    return ET.tostring(copy, encoding='unicode')


def _parse_version(text: str) -> int:
    parts = [int(p) for p in text.split('.')] + [0, 0]
    return parts[0] * 1000000 + parts[1] * 1000 + parts[2]


def restore_blocker(conn: libvirt.virConnect, path: str,
                    virt_type: str) -> str | None:
    """Why the state in ``path`` cannot be restored by ``conn`` with
    ``virt_type``, or None when it can (or the check is not possible).
    Changes nothing."""
    try:
        saved_xml = conn.saveImageGetXMLDesc(path, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in _UNSUPPORTED:
            return None
        return 'its domain XML cannot be read (%s)' % (
            exc.get_error_message() or exc)
    domain = ET.fromstring(saved_xml)
    os_type = domain.find('os/type')
    arch = os_type.get('arch') if os_type is not None else None
    machine = os_type.get('machine') if os_type is not None else None
    if machine:
        try:
            conn.getDomainCapabilities(None, arch, machine, virt_type, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in _UNSUPPORTED:
                return ('machine type %s is not offered by this host (%s)'
                        % (machine, exc.get_error_message() or exc))
    saved_on = domain.find('metadata/' + _q('saved-on'))
    if saved_on is None:
        return None  # saved before the element existed: the restore decides
    saver = saved_on.get('host') or 'the saving host'
    if saved_on.get('virt_type') != virt_type:
        return 'it was saved under %s on %s, this host runs guests with %s' % (
            saved_on.get('virt_type'), saver, virt_type)
    here = conn.getVersion()
    if saved_on.get('qemu') and here < _parse_version(saved_on.get('qemu')):
        return ('it was saved by QEMU %s on %s, this host has the older '
                'QEMU %s' % (saved_on.get('qemu'), saver, version_text(here)))
    # libvirt puts the element's children in its namespace too.
    cpu = saved_on.find(_q('cpu'))
    if virt_type == 'kvm' and cpu is not None:
        try:
            result = conn.compareHypervisorCPU(
                None, arch, machine, virt_type, _bare_xml(cpu), 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in _UNSUPPORTED:
                return None
            raise
        if result == libvirt.VIR_CPU_COMPARE_INCOMPATIBLE:
            return ('the CPU of %s offered features this host cannot '
                    'virtualise (%s model %s)' % (
                        saver, virt_type, cpu.findtext(_q('model'))))
    return None
