"""``leftover-image`` against a real Glance (glance-api under gunicorn,
noauth, file store) that Nova could share: a Nova-style shelve snapshot
(``<server>-shelved``, ``instance_uuid``, ``image_type = snapshot``) is
never reported nor deleted -- even one naming an instance this project
deleted -- while the project's own leftover (property
``lifecycle_shelved_instance``) is."""

import hashlib
import subprocess
import time
import uuid as uuidlib

import pytest

from tests.functional.manage.helpers import _boot, run_json, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def aio(make_aio, glance_server):
    if not glance_server.running:
        glance_server.restart()
    return make_aio(extra={
        ('image', 'source'): 'glance',
        ('glance', 'auth_type'): 'none',
        ('glance', 'endpoint_override'): glance_server.endpoint,
        ('glance', 'num_retries'): 0,
        ('shelve', 'offload_mode'): 'full',
        ('compute', 'report_interval'): 3600,
        ('compute', 'service_down_time'): 7200})


def _sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_novas_shelved_images_in_a_shared_glance_are_left_alone(
        aio, client, glance_server, tmp_path):
    config = write_config(aio, tmp_path / 'manage.conf', sections={
        'image': {'source': 'glance'},
        'glance': {'auth_type': 'none',
                   'endpoint_override': glance_server.endpoint}})
    ours = _boot(client, 'ours', 'host-a1')
    assert client.action(ours, {'shelve': None})[0] == 202
    deadline = time.monotonic() + 120
    while not (aio.db.instance_get(ours).system_metadata.get(
            'shelved_image_id') and
            client.server(ours)['OS-EXT-STS:task_state'] is None):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    our_image = aio.db.instance_get(ours).system_metadata['shelved_image_id']
    assert aio.images.get(our_image)['properties'][
        'lifecycle_shelved_instance'] == ours
    assert client.request('DELETE', '/servers/%s' % ours)[0] == 204
    while client.request('GET', '/servers/%s' % ours)[0] != 404:
        time.sleep(0.05)

    # What Nova's shelve uploads, as Nova names and tags it: one for a
    # server of Nova's, one naming the instance this project just deleted.
    disk = str(tmp_path / 'nova-disk.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, '32M'],
                   check=True)
    nova_images = [aio.images.upload(
        '%s-shelved' % name, disk, 'qcow2',
        {'instance_uuid': owner, 'image_type': 'snapshot',
         'base_image_ref': client.default_image})['id']
        for name, owner in (('nova-server', str(uuidlib.uuid4())),
                            ('ours', ours))]
    stored = {i: _sha256(glance_server.store_path(i)) for i in nova_images}

    code, doc = run_json(config, 'disks', 'audit', '--category',
                         'leftover-image')
    assert code == 3, doc
    assert [f['resource'] for f in doc['findings']] == [our_image]

    code, doc = run_json(config, 'disks', 'cleanup', '--category',
                         'leftover-image', '--yes')
    assert code == 0, doc
    assert [(r['resource'], r['action']) for r in doc['results']] == [
        (our_image, 'deleted')]
    remaining = {i['id']: i for i in aio.images.list()}
    assert our_image not in remaining
    for image_id in nova_images:
        assert remaining[image_id]['status'] == 'active'
        assert _sha256(glance_server.store_path(image_id)) == \
            stored[image_id]
    code, doc = run_json(config, 'disks', 'audit', '--category',
                         'leftover-image')
    assert (code, doc['findings']) == (0, [])
