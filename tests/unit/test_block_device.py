"""The root-volume subset of Nova's block_device_mapping_v2, the compute
host's connector and the device a connection becomes; the Cinder client's
error mapping on a stub client."""

import pytest
from cinderclient import exceptions as cinder_exc

from lifecycle import exception
from lifecycle.compute import block_device
from lifecycle.compute import volumes
from lifecycle.virt import domain_xml
from lifecycle.volume import cinder
from lifecycle.volume import connector

VOL = '5c3e3a4e-1f0b-4d4c-9a55-2f1c2c3d4e5f'


def _bdm(**kw):
    bdm = {'source_type': 'volume', 'destination_type': 'volume',
           'boot_index': 0, 'uuid': VOL}
    bdm.update(kw)
    return bdm


def test_no_mapping_is_an_image_backed_server():
    assert block_device.root_volume('img', None) is None
    assert block_device.root_volume('img', []) is None


@pytest.mark.parametrize('bdm, delete', [
    (_bdm(), False),
    (_bdm(boot_index='0', delete_on_termination='true'), True),
    (_bdm(delete_on_termination=True, device_name='vda'), True),
    (_bdm(destination_type=None), False),
])
def test_root_volume(bdm, delete):
    root = block_device.root_volume('', [bdm])
    assert root == block_device.RootVolume(VOL, delete)
    assert block_device.root_volume(None, [bdm]) == root


@pytest.mark.parametrize('image, bdms, reason', [
    ('', [_bdm(), _bdm()], 'exactly one mapping needs boot_index 0'),
    ('', [_bdm(boot_index=1)], 'exactly one mapping needs boot_index 0'),
    ('', [_bdm(boot_index=None)], 'exactly one mapping'),
    ('', [_bdm(), _bdm(boot_index=1)], 'only the root volume'),
    ('', [_bdm(boot_index='x')], 'not an integer'),
    ('', [_bdm(source_type='image')], "source_type 'image'"),
    ('', [_bdm(source_type='blank')], "source_type 'blank'"),
    ('', [_bdm(source_type=None)], 'source_type None'),
    ('', [_bdm(destination_type='local')], "destination_type 'local'"),
    ('', [_bdm(uuid='abc')], 'not a volume id'),
    ('', [_bdm(volume_size=1)], 'volume_size not supported'),
    ('', [_bdm(tag='t', disk_bus='virtio')], 'disk_bus, tag not supported'),
    ('', [_bdm(delete_on_termination='maybe')], 'not a boolean'),
    ('7b7e8e70-3c1a-4a51-8d3f-4a4f30f6f0c1', [_bdm()], 'imageRef must be'),
])
def test_refused(image, bdms, reason):
    with pytest.raises(exception.InvalidInput) as caught:
        block_device.root_volume(image, bdms)
    assert caught.value.code == 400
    assert 'Block Device Mapping is Invalid' in caught.value.format_message()
    assert reason in caught.value.format_message()


def test_translate_connection_info():
    attachment = {'connection_info': {
        'driver_volume_type': 'iscsi', 'attachment_id': 'a',
        'access_mode': 'rw', 'target_portal': '10.0.0.5:3260',
        'target_iqn': 'iqn.2010-10.org.openstack:volume-x',
        'target_lun': 1}}
    assert volumes.translate_connection_info(attachment) == {
        'driver_volume_type': 'iscsi', 'data': {
            'access_mode': 'rw', 'target_portal': '10.0.0.5:3260',
            'target_iqn': 'iqn.2010-10.org.openstack:volume-x',
            'target_lun': 1}}


RBD_DATA = {'name': 'cinder-volumes/volume-x', 'hosts': ['127.0.0.1'],
            'ports': ['6790'], 'auth_enabled': False}


def test_rbd_connection_is_a_network_disk():
    disk = connector.connect({'driver_volume_type': 'rbd',
                              'data': dict(RBD_DATA)}, VOL, 'host-a1')
    net = disk.path if hasattr(disk, 'path') else disk
    assert isinstance(net, domain_xml.NetworkDisk)
    assert (net.pool, net.image) == ('cinder-volumes', 'volume-x')
    assert net.hosts == (('127.0.0.1', 6790),)
    assert net.username is None and net.secret_uuid is None


@pytest.mark.parametrize('info', [
    {'driver_volume_type': 'rbd', 'data': dict(RBD_DATA, hosts=[],
                                               ports=[])},
    {'driver_volume_type': 'rbd', 'data': dict(RBD_DATA, name='nopool')},
    {'driver_volume_type': 'rbd', 'data': dict(RBD_DATA, auth_enabled=True)},
    {'driver_volume_type': 'nfs', 'data': {'export': 'h:/x'}},
    {'driver_volume_type': 'iscsi', 'data': {'access_mode': 'rw'}},
])
def test_bad_connection_info_is_refused(info):
    with pytest.raises(exception.InvalidVolume):
        connector.connect(info, VOL, 'host-a1')


class _Volumes:
    def __init__(self, error):
        self.error = error
        self.calls = 0

    def get(self, volume_id):
        self.calls += 1
        raise self.error

    def delete(self, volume_id):
        self.calls += 1
        raise self.error


class _Client:
    def __init__(self, error):
        self.volumes = _Volumes(error)


@pytest.mark.parametrize('error, expected', [
    (cinder_exc.NotFound(404), exception.VolumeNotFound),
    (cinder_exc.BadRequest(400), exception.InvalidVolume),
    (cinder_exc.ClientException(409), exception.InvalidVolume),
    (cinder_exc.ClientException(500), exception.VolumeServiceError),
    (ConnectionRefusedError(), exception.VolumeServiceError),
])
def test_client_errors(error, expected):
    api = cinder.CinderAPI(client=_Client(error))
    api.conf.set_override('http_retries', 0, group='cinder')
    try:
        with pytest.raises(expected):
            api.get(VOL)
    finally:
        api.conf.clear_override('http_retries', group='cinder')


def test_delete_of_a_missing_volume_is_not_an_error():
    client = _Client(cinder_exc.NotFound(404))
    assert cinder.CinderAPI(client=client).delete(VOL) is False


def test_unconfigured_cinder_refuses_with_400():
    api = cinder.CinderAPI()
    with pytest.raises(exception.VolumeServiceNotConfigured) as caught:
        api.get(VOL)
    assert caught.value.code == 400
