"""Full offload through a real Glance (glance-api under gunicorn, noauth,
SQLite, file store): the stock-Nova path this project keeps as fallback."""

import hashlib
import os
import threading
import time

import pytest
from oslo_utils import uuidutils

from tests.harness.client import Client
from tests.functional.conftest import disk_of
from tests.functional.conftest import qemu_io

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
        ('shelve', 'offload_mode'): 'full'})


def _sha512(path):
    digest = hashlib.sha512()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _boot_with_pattern(client, aio, host, length='4M'):
    server_id = client.boot('glance-vm', host=host)
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'os-stop': None})
    client.wait(server_id, 'SHUTOFF')
    qemu_io(disk_of(aio, server_id), 'write -P 0x6d 16M %s' % length)
    return server_id


def _wait(predicate, timeout=120, what=''):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_full_offload_through_glance(aio, client, glance_server):
    image_id = client.default_image
    # Other tests of the session's Glance may have read the image already.
    downloads = glance_server.data_requests(image_id)
    # Two hosts of one group boot the same Glance image: one download.
    first = client.boot('one', host='host-a1')
    second = client.boot('two', host='host-a2')
    client.wait(first, 'ACTIVE')
    client.wait(second, 'ACTIVE')
    assert glance_server.data_requests(image_id) == downloads + 1

    server_id = _boot_with_pattern(client, aio, 'host-a1')
    group_a_dir = os.path.join(aio.storage_path('group-a'), server_id)
    client.action(server_id, {'shelve': None})
    _wait(lambda: aio.db.instance_get(server_id).system_metadata.get(
        'shelved_image_id') and client.server(server_id)[
        'OS-EXT-STS:task_state'] is None, what='full offload')
    shelved = aio.db.instance_get(server_id).system_metadata[
        'shelved_image_id']
    image = aio.images.get(shelved)
    assert image['status'] == 'active'
    assert image['name'] == 'glance-vm-shelved'
    stored = glance_server.store_path(shelved)
    assert image['os_hash_value'] == _sha512(stored)
    assert image['size'] == os.path.getsize(stored)
    assert not os.path.exists(group_a_dir)

    client.action(server_id, {'unshelve': {'host': 'host-b1'}})
    server = client.wait(server_id, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-b1'
    qemu_io(disk_of(aio, server_id, 'group-b'), 'read -P 0x6d 16M 4M')
    _wait(lambda: not _exists(aio, shelved), 30, 'shelved image deleted')


def test_full_offload_image_belongs_to_the_instance_project(
        aio, glance_server):
    """The shelved image is the instance's project's, as Nova's shelve
    snapshot, not the service's (this Glance's unauthenticated context has
    no project: without an owner sent the image would have none)."""
    project = uuidutils.generate_uuid(dashed=False)
    member = Client(aio.url, token='demo:%s' % project)
    # An admin of that project boots on a given host; the member shelves.
    admin = Client(aio.url, token='admin:%s' % project)
    server_id = admin.boot('owned-vm', image=member.default_image,
                           host='host-a1')
    admin.wait(server_id, 'ACTIVE')
    assert aio.db.instance_get(server_id).project_id == project
    status, body = member.action(server_id, {'shelve': None})
    assert status == 202, body
    _wait(lambda: aio.db.instance_get(server_id).system_metadata.get(
        'shelved_image_id') and member.server(server_id)[
        'OS-EXT-STS:task_state'] is None, what='full offload')
    assert member.server(server_id)['status'] == 'SHELVED_OFFLOADED'
    image = aio.images.get(aio.db.instance_get(server_id).system_metadata[
        'shelved_image_id'])
    assert image['status'] == 'active'
    assert image['owner'] == project
    status, body = member.action(server_id, {'unshelve': None})
    assert status == 202, body
    member.wait(server_id, 'ACTIVE')
    status, _ = member.request('DELETE', '/servers/%s' % server_id)
    assert status == 204


def _exists(aio, image_id):
    from lifecycle import exception
    try:
        return aio.images.get(image_id)['status'] != 'deleted'
    except exception.ImageNotFound:
        return False


def test_glance_killed_mid_upload_loses_nothing(aio, client, glance_server):
    server_id = _boot_with_pattern(client, aio, 'host-a2', length='768M')
    disk = disk_of(aio, server_id)
    uploading = threading.Event()

    def kill_when_uploading():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            saving = [i for i in aio.images.list()
                      if i['name'] == 'glance-vm-shelved' and
                      i['status'] == 'saving']
            if saving:
                uploading.set()
                glance_server.kill()
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_uploading)
    killer.start()
    client.action(server_id, {'shelve': None})
    killer.join()
    assert uploading.is_set(), 'the upload was never seen in progress'
    _wait(lambda: client.server(server_id)['OS-EXT-STS:task_state'] is None
          and client.server(server_id).get('fault'), what='upload failure')
    server = client.server(server_id)
    assert server['status'] == 'SHELVED_OFFLOADED'
    assert server['lifecycle:retained_disk']['storage_group'] == 'group-a'
    assert aio.db.instance_get(server_id).system_metadata.get(
        'shelved_image_id') is None
    assert os.path.exists(disk)
    qemu_io(disk, 'read -P 0x6d 16M 4M')

    glance_server.restart()
    assert not [i for i in aio.images.list()
                if i['name'] == 'glance-vm-shelved' and
                i['status'] == 'active']
    client.action(server_id, {'unshelve': None})
    server = client.wait(server_id, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] in ('host-a1', 'host-a2')
    qemu_io(disk, 'read -P 0x6d 16M 4M')
