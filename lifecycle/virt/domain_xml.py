"""Libvirt domain XML of an instance, built with ElementTree.

User data (display name, owner ids, flavor name, disk path) only ever
becomes element text or attribute values; ElementTree escapes it, so no value
can change the document's structure. Characters that XML 1.0 cannot carry at
all (most C0 control characters, lone surrogates) are replaced by U+FFFD,
and, as with any XML, a carriage return in a text value reads back as a line
feed (XML end-of-line normalisation).

The ``<metadata>`` element carries a ``lifecycle:instance`` element in the
project's namespace; it marks a domain as ours and records its owner host, so
that reconciliation can tell hosts apart even on one shared libvirt (the test
driver).
"""

import dataclasses
import datetime
import re
import xml.etree.ElementTree as ET

from lifecycle import exception

NAMESPACE = 'http://openstack.org/xmlns/shelve-lifecycle/1.0'
PREFIX = 'lifecycle'
DISK_FORMATS = ('qcow2', 'raw')
VIRT_TYPES = ('kvm', 'qemu')
DISK_CACHE_MODE = 'writeback'   # 'none' needs O_DIRECT, which tmpfs lacks

ET.register_namespace(PREFIX, NAMESPACE)

# Everything outside XML 1.0's Char production.
_INVALID_XML_CHARS = re.compile(
    '[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]')

# An RBD pool or image name as this project writes them (Ceph allows more;
# nothing here needs more, and nothing else can reach the XML).
_RBD_NAME_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')

# metadata element -> key returned by parse_owner_metadata
_TEXT_FIELDS = (('uuid', 'uuid'), ('name', 'display_name'),
                ('host', 'host'), ('creationTime', 'creation_time'))


@dataclasses.dataclass(frozen=True)
class NetworkDisk:
    """A root disk QEMU reaches over the network: today an RBD image.

    Storage backends return it as :attr:`DiskInfo.path
    <lifecycle.storage.base.DiskInfo>` and the compute manager passes that
    through to :attr:`DomainSpec.disk_path` unchanged, so the domain gets a
    ``<disk type='network'>`` without the manager knowing about Ceph. It is
    path-like (``os.fspath`` gives ``location``, the disk's place in the
    storage group's namespace, ``<instances_path>/<image>``) so that what
    the manager records as ``shelved_disk`` -- the path relative to the
    group's ``instances_path`` -- is the image name.
    """
    protocol: str                          # 'rbd'
    pool: str
    image: str
    hosts: tuple[tuple[str, int], ...]     # monitors: (address, port)
    location: str
    username: str | None = None            # cephx client id
    secret_uuid: str | None = None         # libvirt secret of its key

    @property
    def name(self) -> str:
        return f'{self.pool}/{self.image}'

    def __fspath__(self) -> str:
        return self.location

    @classmethod
    def from_dict(cls, data: dict) -> 'NetworkDisk':
        """Back from ``dataclasses.asdict`` (e.g. a flow's persisted
        result, stored as JSON: the tuples have become lists)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise exception.InvalidInput(
                reason='unknown network disk fields %s' % sorted(unknown))
        values = dict(data)
        values['hosts'] = tuple((str(h), int(p))
                                for h, p in values.get('hosts') or ())
        return cls(**values)

    def __str__(self) -> str:
        return f'{self.protocol}:{self.name}'


@dataclasses.dataclass(frozen=True)
class KernelBoot:
    """Direct kernel boot: QEMU loads the kernel and initrd itself (Nova's
    ``kernel_id``/``ramdisk_id`` image properties) instead of booting the
    root disk's boot loader. Paths are files on the compute host."""
    kernel_path: str
    ramdisk_path: str | None = None
    cmdline: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> 'KernelBoot':
        return cls(**data)


def rbd_disk(pool: str, image: str, hosts, location: str, *,
             user: str | None = None,
             secret_uuid: str | None = None) -> NetworkDisk:
    """An RBD image as a network disk, for the ``rbd`` storage backend and
    for Cinder's ``rbd`` volumes alike. cephx only with a libvirt secret:
    the domain then carries ``<auth username=user>`` with it; without one,
    QEMU connects as the Ceph configuration says (a cluster without cephx).
    InvalidInput for what the domain XML would refuse (no monitor, bad
    names)."""
    disk = NetworkDisk(
        protocol='rbd', pool=pool, image=image,
        hosts=tuple((str(h), int(p)) for h, p in hosts),
        location=location,
        username=(user or None) if secret_uuid else None,
        secret_uuid=secret_uuid or None)
    _validate_network(disk, 'raw')
    return disk


@dataclasses.dataclass(frozen=True)
class DomainSpec:
    uuid: str            # instance uuid == libvirt domain uuid
    display_name: str    # user-chosen, any characters
    vcpus: int
    memory_mb: int
    disk_path: 'str | NetworkDisk'
    disk_format: str     # 'qcow2' or 'raw'
    host: str            # owner compute host
    user_id: str
    project_id: str
    flavor_name: str
    boot: KernelBoot | None = None   # None: boot from the root disk

    def __post_init__(self) -> None:
        # A DiskInfo that went through persistence (dataclasses.asdict and
        # JSON) carries its NetworkDisk as a dict: take it back as one.
        if isinstance(self.disk_path, dict):
            object.__setattr__(self, 'disk_path',
                               NetworkDisk.from_dict(self.disk_path))
        if isinstance(self.boot, dict):
            object.__setattr__(self, 'boot', KernelBoot.from_dict(self.boot))


def domain_name(instance_uuid: str) -> str:
    """The libvirt domain name of an instance: ``instance-<uuid>``."""
    return f'instance-{instance_uuid}'


def _q(tag: str) -> str:
    return f'{{{NAMESPACE}}}{tag}'


def _clean(value: object) -> str:
    return _INVALID_XML_CHARS.sub('\ufffd', str(value))


def _sub(parent: ET.Element, tag: str, text: object | None = None,
         **attrib: object) -> ET.Element:
    elem = ET.SubElement(parent, tag,
                         {k: _clean(v) for k, v in attrib.items()})
    if text is not None:
        elem.text = _clean(text)
    return elem


def _validate(spec: DomainSpec, virt_type: str) -> None:
    if virt_type not in VIRT_TYPES:
        raise exception.InvalidInput(
            reason=f'virt_type must be one of {VIRT_TYPES}, not '
                   f'{virt_type!r}')
    if spec.disk_format not in DISK_FORMATS:
        raise exception.InvalidInput(
            reason=f'disk_format must be one of {DISK_FORMATS}, not '
                   f'{spec.disk_format!r}')
    for field in ('vcpus', 'memory_mb'):
        value = getattr(spec, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise exception.InvalidInput(
                reason=f'{field} must be a positive integer, not {value!r}')
    if isinstance(spec.disk_path, NetworkDisk):
        _validate_network(spec.disk_path, spec.disk_format)
    elif not spec.disk_path.startswith('/'):
        raise exception.InvalidInput(
            reason=f'disk_path must be absolute, not {spec.disk_path!r}')
    if spec.boot is not None:
        for field in ('kernel_path', 'ramdisk_path'):
            path = getattr(spec.boot, field)
            if path is not None and not path.startswith('/'):
                raise exception.InvalidInput(
                    reason=f'{field} must be absolute, not {path!r}')


def _validate_network(disk: NetworkDisk, disk_format: str) -> None:
    problems = []
    if disk.protocol != 'rbd':
        problems.append(f'protocol {disk.protocol!r} is not rbd')
    if disk_format != 'raw':
        problems.append(f'an RBD image is raw, not {disk_format!r}')
    for what in ('pool', 'image'):
        if not _RBD_NAME_RE.match(getattr(disk, what) or ''):
            problems.append(f'bad {what} name {getattr(disk, what)!r}')
    if not disk.hosts:
        problems.append('no monitor hosts')
    for host, port in disk.hosts:
        if (not host or not isinstance(port, int) or isinstance(port, bool)
                or not 0 < port < 65536):
            problems.append(f'bad monitor address {host!r}:{port!r}')
    if bool(disk.secret_uuid) and not disk.username:
        problems.append('a cephx secret needs a username')
    if problems:
        raise exception.InvalidInput(
            reason='network disk %s: %s' % (disk, '; '.join(problems)))


def _metadata(parent: ET.Element, spec: DomainSpec,
              creation_time: str) -> None:
    inst = ET.SubElement(ET.SubElement(parent, 'metadata'), _q('instance'))
    _sub(inst, _q('uuid'), spec.uuid)
    _sub(inst, _q('name'), spec.display_name)
    _sub(inst, _q('host'), spec.host)
    _sub(inst, _q('creationTime'), creation_time)
    flavor = _sub(inst, _q('flavor'), name=spec.flavor_name)
    _sub(flavor, _q('memory'), spec.memory_mb)
    _sub(flavor, _q('vcpus'), spec.vcpus)
    owner = _sub(inst, _q('owner'))
    _sub(owner, _q('user'), uuid=spec.user_id)
    _sub(owner, _q('project'), uuid=spec.project_id)


def owner_metadata_xml(spec: DomainSpec) -> str:
    """The bare ``lifecycle:instance`` element of ``spec`` (its children
    unqualified), as ``virDomainSetMetadata`` takes it."""
    holder = ET.Element('holder')
    _metadata(holder, spec, datetime.datetime.now(
        datetime.UTC).strftime('%Y-%m-%d %H:%M:%S'))
    inst = holder.find('metadata/' + _q('instance'))
    for elem in inst.iter():
        if elem.tag.startswith('{'):
            elem.tag = elem.tag.split('}', 1)[1]
    return ET.tostring(inst, encoding='unicode')


def _network_disk(devices: ET.Element, spec: DomainSpec) -> None:
    disk: NetworkDisk = spec.disk_path  # type: ignore[assignment]
    elem = _sub(devices, 'disk', type='network', device='disk')
    # discard: a guest's TRIM frees objects of a thin RBD clone.
    _sub(elem, 'driver', name='qemu', type='raw', cache=DISK_CACHE_MODE,
         discard='unmap')
    if disk.secret_uuid:
        auth = _sub(elem, 'auth', username=disk.username)
        _sub(auth, 'secret', type='ceph', uuid=disk.secret_uuid)
    source = _sub(elem, 'source', protocol=disk.protocol, name=disk.name)
    for host, port in disk.hosts:
        _sub(source, 'host', name=host, port=port)
    _sub(elem, 'target', dev='vda', bus='virtio')


def _disk(devices: ET.Element, spec: DomainSpec) -> None:
    if isinstance(spec.disk_path, NetworkDisk):
        _network_disk(devices, spec)
        return
    is_block = spec.disk_path.startswith('/dev/')
    disk = _sub(devices, 'disk', type='block' if is_block else 'file',
                device='disk')
    _sub(disk, 'driver', name='qemu', type=spec.disk_format,
         cache=DISK_CACHE_MODE)
    if is_block:
        _sub(disk, 'source', dev=spec.disk_path)
    else:
        _sub(disk, 'source', file=spec.disk_path)
    _sub(disk, 'target', dev='vda', bus='virtio')


def build_domain_xml(spec: DomainSpec, virt_type: str, *,
                     creation_time: datetime.datetime | None = None) -> str:
    """Return the domain XML of ``spec`` for ``virt_type`` ('kvm'|'qemu')."""
    _validate(spec, virt_type)
    created = (creation_time or datetime.datetime.now(datetime.UTC))
    created_s = created.strftime('%Y-%m-%d %H:%M:%S')

    dom = ET.Element('domain', {'type': virt_type})
    _sub(dom, 'name', domain_name(spec.uuid))
    _sub(dom, 'uuid', spec.uuid)
    _metadata(dom, spec, created_s)
    _sub(dom, 'memory', spec.memory_mb * 1024, unit='KiB')
    _sub(dom, 'currentMemory', spec.memory_mb * 1024, unit='KiB')
    _sub(dom, 'vcpu', spec.vcpus, placement='static')
    os_elem = _sub(dom, 'os')
    _sub(os_elem, 'type', 'hvm', arch='x86_64')
    if spec.boot is None:
        _sub(os_elem, 'boot', dev='hd')
    else:
        _sub(os_elem, 'kernel', spec.boot.kernel_path)
        if spec.boot.ramdisk_path:
            _sub(os_elem, 'initrd', spec.boot.ramdisk_path)
        if spec.boot.cmdline:
            _sub(os_elem, 'cmdline', spec.boot.cmdline)
    features = _sub(dom, 'features')
    _sub(features, 'acpi')
    _sub(features, 'apic')
    _sub(dom, 'clock', offset='utc')
    _sub(dom, 'on_poweroff', 'destroy')
    _sub(dom, 'on_reboot', 'restart')
    _sub(dom, 'on_crash', 'destroy')
    devices = _sub(dom, 'devices')
    _disk(devices, spec)
    serial = _sub(devices, 'serial', type='pty')
    _sub(serial, 'target', port=0)
    _sub(devices, 'memballoon', model='none')
    ET.indent(dom)
    return ET.tostring(dom, encoding='unicode')


def _find_instance(root: ET.Element) -> tuple[ET.Element | None, str]:
    """Our element and the namespace its children use.

    In a full domain XML the element is namespace-qualified; libvirt's
    ``virDomainGetMetadata`` returns it bare (``<instance>``, no namespace).
    """
    if root.tag == _q('instance'):
        return root, NAMESPACE
    if root.tag == 'instance':
        return root, ''
    return root.find('metadata/' + _q('instance')), NAMESPACE


def parse_owner_metadata(xml: str) -> dict:
    """Read our metadata back from a domain XML or the bare element.

    Accepts a whole domain XML (``virDomainGetXMLDesc``) or the element
    returned by ``virDomainGetMetadata(ELEMENT, NAMESPACE)``. Returns ``{}``
    when there is no ``lifecycle:instance`` element (a domain that is not
    ours). Otherwise a dict with ``uuid``, ``display_name``, ``host``,
    ``creation_time``, ``flavor_name``, ``memory_mb``, ``vcpus``,
    ``user_id`` and ``project_id`` (None where missing).
    """
    root = ET.fromstring(xml)
    inst, ns = _find_instance(root)
    if inst is None:
        return {}

    def q(*tags: str) -> str:
        return '/'.join(f'{{{ns}}}{t}' if ns else t for t in tags)

    result = {}
    for tag, key in _TEXT_FIELDS:
        elem = inst.find(q(tag))
        result[key] = None if elem is None else (elem.text or '')
    if result['uuid'] is None and root.tag == 'domain':
        result['uuid'] = root.findtext('uuid')
    flavor = inst.find(q('flavor'))
    result['flavor_name'] = None if flavor is None else flavor.get('name')
    for tag, key in (('memory', 'memory_mb'), ('vcpus', 'vcpus')):
        text = None if flavor is None else flavor.findtext(q(tag))
        result[key] = int(text) if text and text.strip().isdigit() else None
    for tag, key in (('user', 'user_id'), ('project', 'project_id')):
        elem = inst.find(q('owner', tag))
        result[key] = None if elem is None else elem.get('uuid')
    return result


def parse_disk_paths(xml: str) -> list[str]:
    """Source file/device paths of the ``device='disk'`` disks of a domain;
    a network disk as ``<protocol>:<name>`` (``rbd:pool/image``)."""
    paths = []
    for disk in ET.fromstring(xml).iterfind('devices/disk'):
        source = disk.find('source')
        path = None if source is None else (source.get('file')
                                            or source.get('dev'))
        if source is not None and disk.get('type') == 'network':
            path = '%s:%s' % (source.get('protocol'), source.get('name'))
        if disk.get('device', 'disk') == 'disk' and path:
            paths.append(path)
    return paths
