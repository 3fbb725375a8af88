"""Network (RBD) root disks in the domain XML, and the per-group ``[rbd]``
settings that feed them."""

import dataclasses
import json
import os
import xml.etree.ElementTree as ET

import pytest
from oslo_config import cfg

from lifecycle import exception
from lifecycle.conf import rbd as rbd_conf
from lifecycle.storage import base
from lifecycle.storage import rbd_client
from lifecycle.virt import domain_xml

UUID = '4f1a2b3c-0d9e-4f6a-8b7c-112233445566'
SECRET = '0a5c2d6e-1111-4222-8333-444455556666'


def _disk(**overrides) -> domain_xml.NetworkDisk:
    values = dict(protocol='rbd', pool='vms', image=UUID + '_disk',
                  hosts=(('10.0.0.1', 6789), ('10.0.0.2', 6789)),
                  location='/var/lib/lifecycle/ceph/%s_disk' % UUID)
    values.update(overrides)
    return domain_xml.NetworkDisk(**values)


def _spec(disk, disk_format='raw') -> domain_xml.DomainSpec:
    return domain_xml.DomainSpec(
        uuid=UUID, display_name='vm', vcpus=1, memory_mb=512,
        disk_path=disk, disk_format=disk_format, host='host-c1',
        user_id='u', project_id='p', flavor_name='m1.tiny')


def _disk_elem(xml: str) -> ET.Element:
    disks = ET.fromstring(xml).findall('devices/disk')
    assert len(disks) == 1
    return disks[0]


def test_rbd_network_disk_without_cephx():
    xml = domain_xml.build_domain_xml(_spec(_disk()), 'kvm')
    disk = _disk_elem(xml)
    assert disk.get('type') == 'network'
    assert disk.find('driver').attrib == {'name': 'qemu', 'type': 'raw',
                                          'cache': 'writeback',
                                          'discard': 'unmap'}
    source = disk.find('source')
    assert source.get('protocol') == 'rbd'
    assert source.get('name') == 'vms/%s_disk' % UUID
    assert [h.attrib for h in source.findall('host')] == [
        {'name': '10.0.0.1', 'port': '6789'},
        {'name': '10.0.0.2', 'port': '6789'}]
    assert disk.find('auth') is None
    assert disk.find('target').attrib == {'dev': 'vda', 'bus': 'virtio'}
    assert domain_xml.parse_disk_paths(xml) == ['rbd:vms/%s_disk' % UUID]


def test_rbd_network_disk_with_cephx_secret():
    xml = domain_xml.build_domain_xml(
        _spec(_disk(username='lifecycle', secret_uuid=SECRET)), 'kvm')
    auth = _disk_elem(xml).find('auth')
    assert auth.get('username') == 'lifecycle'
    assert auth.find('secret').attrib == {'type': 'ceph', 'uuid': SECRET}


@pytest.mark.parametrize('overrides,fmt', [
    ({'protocol': 'nbd'}, 'raw'),
    ({}, 'qcow2'),
    ({'pool': '../etc'}, 'raw'),
    ({'image': 'a/b'}, 'raw'),
    ({'image': "x' or '1"}, 'raw'),
    ({'hosts': ()}, 'raw'),
    ({'hosts': (('10.0.0.1', 0),)}, 'raw'),
    ({'hosts': (('', 6789),)}, 'raw'),
    ({'secret_uuid': SECRET}, 'raw'),  # a secret without a username
])
def test_bad_network_disks_are_refused(overrides, fmt):
    with pytest.raises(exception.InvalidInput):
        domain_xml.build_domain_xml(_spec(_disk(**overrides), fmt), 'kvm')


def test_network_disk_is_path_like_for_the_shelved_disk_record():
    """The manager records ``relpath(disk.path, instances_path)``: for an
    RBD disk that is the image name."""
    info = base.DiskInfo(path=_disk(), format='raw')
    assert os.path.relpath(info.path, '/var/lib/lifecycle/ceph') == \
        UUID + '_disk'
    assert str(info.path) == 'rbd:vms/%s_disk' % UUID


def test_network_disk_survives_a_persisted_disk_record():
    """A flow persists DiskInfo as ``dataclasses.asdict`` through JSON;
    the spec built from that record is the same as from the original."""
    disk = _disk(username='lifecycle', secret_uuid=SECRET)
    record = json.loads(json.dumps(dataclasses.asdict(
        base.DiskInfo(path=disk, format='raw'))))
    spec = _spec(record['path'])
    assert spec.disk_path == disk
    created = domain_xml.datetime.datetime(2026, 1, 1)
    assert domain_xml.build_domain_xml(spec, 'kvm', creation_time=created) \
        == domain_xml.build_domain_xml(_spec(disk), 'kvm',
                                       creation_time=created)
    with pytest.raises(exception.InvalidInput):
        _spec(dict(record['path'], extra='x'))


@pytest.fixture
def conf():
    conf = cfg.ConfigOpts()
    rbd_conf.register_opts(conf)
    conf([], project='lifecycle-test')
    return conf


def test_group_section_overrides_rbd_defaults(conf, tmp_path):
    ini = tmp_path / 'lifecycle.conf'
    ini.write_text('[rbd]\nstorage_groups = ceph-a, ceph-b\nuser = shared\n'
                   'pool = common\n\n[rbd:ceph-a]\npool = vms-a\n'
                   'ceph_conf = /etc/ceph/a.conf\ntimeout = 5\n')
    conf(['--config-file', str(ini)], project='lifecycle-test')
    assert rbd_conf.is_rbd_group(conf, 'ceph-a')
    assert not rbd_conf.is_rbd_group(conf, 'files')
    assert not rbd_conf.is_rbd_group(conf, None)
    assert rbd_conf.settings(conf, 'ceph-a') == {
        'ceph_conf': '/etc/ceph/a.conf', 'pool': 'vms-a', 'user': 'shared',
        'secret_uuid': None, 'timeout': 5}
    # A group without a section of its own: [rbd] as is.
    assert rbd_conf.settings(conf, 'ceph-b') == {
        'ceph_conf': '/etc/ceph/ceph.conf', 'pool': 'common',
        'user': 'shared', 'secret_uuid': None, 'timeout': 120}
    assert rbd_conf.settings(conf, None) == rbd_conf.settings(conf, 'ceph-b')


def test_rbd_options_are_listed_for_the_sample(conf):
    listed = {o.dest for o in rbd_conf.list_opts()['rbd']}
    assert listed == {'storage_groups', 'ceph_conf', 'pool', 'user',
                      'secret_uuid', 'timeout'}


@pytest.mark.parametrize('value,expected', [
    ('127.0.0.1:41139', [('127.0.0.1', 41139)]),
    ('10.0.0.1,10.0.0.2', [('10.0.0.1', 6789), ('10.0.0.2', 6789)]),
    ('10.0.0.1:6789 10.0.0.2:6790', [('10.0.0.1', 6789),
                                     ('10.0.0.2', 6790)]),
    ('[v2:10.0.0.1:3300,v1:10.0.0.1:6789],[v2:10.0.0.2:3300,v1:10.0.0.2:6789]',
     [('10.0.0.1', 6789), ('10.0.0.2', 6789)]),
    ('v1:127.0.0.1:41139', [('127.0.0.1', 41139)]),
    ('v2:10.0.0.5', [('10.0.0.5', 3300)]),
    ('[v2:10.0.0.1:3300]', [('10.0.0.1', 3300)]),
    ('[::1]:6789', [('::1', 6789)]),
    ('mon-a.example.org; mon-b.example.org', [('mon-a.example.org', 6789),
                                              ('mon-b.example.org', 6789)]),
    ('', []),
])
def test_mon_host_forms(value, expected):
    assert rbd_client.parse_mon_host(value) == expected
