"""Domain XML builder: structure, escaping of user data, metadata."""

import dataclasses
import datetime
import xml.etree.ElementTree as ET

import pytest

from lifecycle import exception
from lifecycle.virt import domain_xml

NS = '{%s}' % domain_xml.NAMESPACE
UUID = '4f1a2b3c-0d9e-4f6a-8b7c-112233445566'

HOSTILE = [
    '<script>&\'"$(rm -rf /)',
    '</lifecycle:name><lifecycle:host>evil</lifecycle:host>',
    ']]><!-- --><![CDATA[x]]>',
    '<!DOCTYPE d [<!ENTITY e "boom">]>&e;',
    '&amp; &lt; &#x41; &#0;',
    '`id`; echo $HOME | tee /etc/passwd && \\ \'',
    '  leading and trailing spaces\t ',
    'multi\nline',
    'ünïcødé ☃ 名前 \U0001F600',
    '',
]


def _spec(**overrides) -> domain_xml.DomainSpec:
    values = dict(uuid=UUID, display_name='web-1', vcpus=2, memory_mb=512,
                  disk_path=f'/var/lib/lifecycle/group-a/{UUID}/disk',
                  disk_format='qcow2', host='host-a1', user_id='user-1',
                  project_id='project-1', flavor_name='m1.small')
    values.update(overrides)
    return domain_xml.DomainSpec(**values)


def _tags(xml: str) -> list[str]:
    return [elem.tag for elem in ET.fromstring(xml).iter()]


def test_domain_name():
    assert domain_xml.domain_name(UUID) == 'instance-' + UUID


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _spec().vcpus = 4


@pytest.mark.parametrize('virt_type', ['kvm', 'qemu'])
def test_structure(virt_type):
    root = ET.fromstring(domain_xml.build_domain_xml(_spec(), virt_type))
    assert root.tag == 'domain'
    assert root.get('type') == virt_type
    assert root.findtext('name') == 'instance-' + UUID
    assert root.findtext('uuid') == UUID
    assert root.find('memory').get('unit') == 'KiB'
    assert root.findtext('memory') == str(512 * 1024)
    assert root.findtext('currentMemory') == str(512 * 1024)
    assert root.findtext('vcpu') == '2'
    os_type = root.find('os/type')
    assert os_type.text == 'hvm'
    assert os_type.get('arch') == 'x86_64'
    assert os_type.get('machine') in (None, 'pc')
    assert root.find('features/acpi') is not None
    assert root.findtext('on_poweroff') == 'destroy'
    assert root.findtext('on_reboot') == 'restart'
    assert root.findtext('on_crash') == 'destroy'
    assert root.find('devices/graphics') is None
    assert root.find('devices/serial').get('type') == 'pty'
    assert root.find('devices/memballoon').get('model') == 'none'


@pytest.mark.parametrize('disk_format', ['qcow2', 'raw'])
def test_disk(disk_format):
    spec = _spec(disk_format=disk_format)
    disks = ET.fromstring(
        domain_xml.build_domain_xml(spec, 'kvm')).findall('devices/disk')
    assert len(disks) == 1
    disk = disks[0]
    assert (disk.get('type'), disk.get('device')) == ('file', 'disk')
    driver = disk.find('driver')
    assert driver.get('name') == 'qemu'
    assert driver.get('type') == disk_format
    assert driver.get('cache') != 'none'   # O_DIRECT fails on tmpfs
    assert disk.find('source').get('file') == spec.disk_path
    assert disk.find('target').attrib == {'dev': 'vda', 'bus': 'virtio'}


def test_block_device_disk():
    xml = domain_xml.build_domain_xml(_spec(disk_path='/dev/vg0/disk',
                                            disk_format='raw'), 'kvm')
    disk = ET.fromstring(xml).find('devices/disk')
    assert disk.get('type') == 'block'
    assert disk.find('source').get('dev') == '/dev/vg0/disk'
    assert domain_xml.parse_disk_paths(xml) == ['/dev/vg0/disk']


def test_boots_from_disk_by_default():
    os_elem = ET.fromstring(
        domain_xml.build_domain_xml(_spec(), 'kvm')).find('os')
    assert os_elem.find('boot').get('dev') == 'hd'
    assert os_elem.find('kernel') is None


def test_direct_kernel_boot():
    boot = domain_xml.KernelBoot(f'/var/lib/lifecycle/{UUID}/kernel',
                                 f'/var/lib/lifecycle/{UUID}/ramdisk',
                                 'console=ttyS0 </os><x/>')
    os_elem = ET.fromstring(domain_xml.build_domain_xml(
        _spec(boot=boot), 'qemu')).find('os')
    assert os_elem.find('boot') is None
    assert os_elem.findtext('kernel') == boot.kernel_path
    assert os_elem.findtext('initrd') == boot.ramdisk_path
    # the command line is text, never markup
    assert os_elem.findtext('cmdline') == boot.cmdline


def test_kernel_boot_survives_persistence():
    boot = domain_xml.KernelBoot('/k', None, 'quiet')
    spec = _spec(boot=boot)
    again = domain_xml.DomainSpec(**dataclasses.asdict(spec))
    assert again == spec


def test_metadata_round_trip():
    created = datetime.datetime(2024, 5, 6, 7, 8, 9,
                                tzinfo=datetime.UTC)
    xml = domain_xml.build_domain_xml(_spec(), 'qemu', creation_time=created)
    assert domain_xml.parse_owner_metadata(xml) == {
        'uuid': UUID, 'display_name': 'web-1', 'host': 'host-a1',
        'creation_time': '2024-05-06 07:08:09', 'flavor_name': 'm1.small',
        'memory_mb': 512, 'vcpus': 2, 'user_id': 'user-1',
        'project_id': 'project-1'}
    inst = ET.fromstring(xml).find('metadata/' + NS + 'instance')
    assert inst is not None
    assert f'xmlns:lifecycle="{domain_xml.NAMESPACE}"' in xml


def test_creation_time_defaults_to_now():
    meta = domain_xml.parse_owner_metadata(
        domain_xml.build_domain_xml(_spec(), 'kvm'))
    created = datetime.datetime.strptime(meta['creation_time'],
                                         '%Y-%m-%d %H:%M:%S')
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    assert abs((now - created).total_seconds()) < 60


def test_parse_bare_element_as_returned_by_libvirt():
    # virDomainGetMetadata(ELEMENT, ns) hands back the element unqualified
    bare = ('<instance><uuid>u</uuid><name>&lt;a&gt;</name>'
            '<host>host-b1</host><creationTime>t</creationTime>'
            '<flavor name="f"><memory>64</memory><vcpus>1</vcpus></flavor>'
            '<owner><user uuid="uu"/><project uuid="pp"/></owner>'
            '</instance>')
    assert domain_xml.parse_owner_metadata(bare) == {
        'uuid': 'u', 'display_name': '<a>', 'host': 'host-b1',
        'creation_time': 't', 'flavor_name': 'f', 'memory_mb': 64,
        'vcpus': 1, 'user_id': 'uu', 'project_id': 'pp'}


def test_parse_foreign_domain_has_no_owner():
    foreign = ("<domain type='kvm'><name>other</name><metadata>"
               "<nova:instance xmlns:nova='http://openstack.org/xmlns/"
               "libvirt/nova/1.1'><nova:name>x</nova:name></nova:instance>"
               "</metadata></domain>")
    assert domain_xml.parse_owner_metadata(foreign) == {}
    assert domain_xml.parse_owner_metadata(
        "<domain><name>x</name></domain>") == {}


@pytest.mark.parametrize('name', HOSTILE)
def test_hostile_display_name_round_trips_verbatim(name):
    benign = domain_xml.build_domain_xml(_spec(), 'kvm')
    xml = domain_xml.build_domain_xml(_spec(display_name=name), 'kvm')
    # user data never adds, removes or renames elements
    assert _tags(xml) == _tags(benign)
    meta = domain_xml.parse_owner_metadata(xml)
    assert meta['display_name'] == name
    assert meta['host'] == 'host-a1'
    assert ET.fromstring(xml).findtext('name') == 'instance-' + UUID


@pytest.mark.parametrize('field', ['host', 'user_id', 'project_id',
                                   'flavor_name', 'disk_path'])
def test_hostile_values_in_every_field(field):
    value = '/<x a="1">&\'"$(reboot)</x>'
    xml = domain_xml.build_domain_xml(_spec(**{field: value}), 'qemu')
    assert _tags(xml) == _tags(domain_xml.build_domain_xml(_spec(), 'qemu'))
    if field == 'disk_path':
        assert domain_xml.parse_disk_paths(xml) == [value]
    else:
        assert domain_xml.parse_owner_metadata(xml)[field] == value


def test_characters_xml_cannot_carry_are_replaced():
    xml = domain_xml.build_domain_xml(
        _spec(display_name='a\x00b\x1bc\ud800d'), 'kvm')
    assert (domain_xml.parse_owner_metadata(xml)['display_name']
            == 'a\ufffdb\ufffdc\ufffdd')


def test_parse_disk_paths():
    xml = domain_xml.build_domain_xml(_spec(), 'kvm')
    assert domain_xml.parse_disk_paths(xml) == [_spec().disk_path]


@pytest.mark.parametrize('overrides, virt_type', [
    ({'disk_format': 'vmdk'}, 'kvm'),
    ({'disk_format': 'qcow2"/><x y="'}, 'kvm'),
    ({'vcpus': 0}, 'kvm'),
    ({'memory_mb': -1}, 'kvm'),
    ({'memory_mb': '512'}, 'kvm'),
    ({'vcpus': True}, 'kvm'),
    ({'disk_path': 'relative/disk'}, 'kvm'),
    ({'boot': domain_xml.KernelBoot('vmlinuz')}, 'kvm'),
    ({'boot': domain_xml.KernelBoot('/k', ramdisk_path='initrd')}, 'kvm'),
    ({}, 'xen'),
    ({}, 'auto'),
])
def test_invalid_input(overrides, virt_type):
    with pytest.raises(exception.InvalidInput):
        domain_xml.build_domain_xml(_spec(**overrides), virt_type)
