"""The root-volume subset of Nova's block_device_mapping_v2, the compute
host's connector and the device a connection becomes; the Cinder client's
error mapping on a stub client."""

import pytest
from cinderclient import exceptions as cinder_exc

from lifecycle import exception
from lifecycle import volume
from lifecycle.compute import block_device
from lifecycle.compute import volumes
from lifecycle.volume import cinder

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


def test_connector():
    assert volumes.connector('host-b1') == {
        'host': 'host-b1', 'ip': '127.0.0.1',
        'initiator': 'iqn.2010-10.org.openstack:host-b1',
        'platform': 'x86_64', 'os_type': 'linux', 'multipath': False}


def test_connection_info_and_device():
    attachment = {'connection_info': {
        'driver_volume_type': 'iscsi', 'attachment_id': 'a',
        'access_mode': 'rw', 'target_portal': '10.0.0.5:3260',
        'target_iqn': 'iqn.2010-10.org.openstack:volume-x',
        'target_lun': 1}}
    info = volumes.translate_connection_info(attachment)
    assert info == {'driver_volume_type': 'iscsi', 'data': {
        'access_mode': 'rw', 'target_portal': '10.0.0.5:3260',
        'target_iqn': 'iqn.2010-10.org.openstack:volume-x',
        'target_lun': 1}}
    assert volumes.device_path(info, VOL) == (
        '/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-'
        'iqn.2010-10.org.openstack:volume-x-lun-1')
    # Cinder's fake driver: no target.
    fake = volumes.translate_connection_info(
        {'connection_info': {'driver_volume_type': 'iscsi',
                             'access_mode': 'rw'}})
    assert volumes.device_path(fake, VOL) == \
        '/dev/disk/by-id/lifecycle-volume-%s' % VOL
    with pytest.raises(volume.InvalidVolume):
        volumes.device_path({'driver_volume_type': 'rbd', 'data': {}}, VOL)


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
    (cinder_exc.NotFound(404), volume.VolumeNotFound),
    (cinder_exc.BadRequest(400), volume.InvalidVolume),
    (cinder_exc.ClientException(409), volume.InvalidVolume),
    (cinder_exc.ClientException(500), volume.VolumeServiceError),
    (ConnectionRefusedError(), volume.VolumeServiceError),
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
    with pytest.raises(volume.VolumeServiceNotConfigured) as caught:
        api.get(VOL)
    assert caught.value.code == 400
