"""Full offload and escalation with the all-in-one's local image source:
the disk's bytes go into a verified image, the retained disk is freed only
after that, and an unshelve anywhere brings the same bytes back."""

import json
import os
import time

import pytest

from tests.functional.conftest import disk_of
from tests.functional.conftest import qemu_io


def _image_dir(aio):
    return aio.images.directory


def _boot_with_pattern(client, aio, name='full', host='host-a1',
                       pattern='0x3c', length='2M'):
    server_id = client.boot(name, host=host)
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'os-stop': None})
    client.wait(server_id, 'SHUTOFF')
    qemu_io(disk_of(aio, server_id), 'write -P %s 8M %s' % (pattern, length))
    return server_id


def _shelved_image(aio, server_id):
    instance = aio.db.instance_get(server_id)
    return instance.system_metadata.get('shelved_image_id')


def _wait_fully_offloaded(client, aio, server_id, timeout=60):
    deadline = time.monotonic() + timeout
    while not (_shelved_image(aio, server_id) and
               client.server(server_id)['OS-EXT-STS:task_state'] is None):
        assert time.monotonic() < deadline, client.server(server_id)
        time.sleep(0.1)
    return client.server(server_id)


def test_full_offload_and_unshelve_in_another_group(make_aio, client_for):
    aio = make_aio(extra={('shelve', 'offload_mode'): 'full'})
    client = client_for(aio.url)
    server_id = _boot_with_pattern(client, aio)
    group_a = aio.storage_path('group-a')

    client.action(server_id, {'shelve': None})
    server = _wait_fully_offloaded(client, aio, server_id)
    assert server['status'] == 'SHELVED_OFFLOADED'
    assert server['lifecycle:retained_disk'] is None
    assert not os.path.exists(os.path.join(group_a, server_id))
    image_id = _shelved_image(aio, server_id)
    image = aio.images.get(image_id)
    assert image['name'] == 'full-shelved'
    assert image['properties']['instance_uuid'] == server_id
    assert image['disk_format'] == 'qcow2'

    # No storage group any more: any host will do, even in another group.
    client.action(server_id, {'unshelve': {'host': 'host-b1'}})
    server = client.wait(server_id, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-b1'
    new_disk = disk_of(aio, server_id, 'group-b')
    qemu_io(new_disk, 'read -P 0x3c 8M 2M')
    qemu_io(new_disk, 'read -P 0x4c 0 64k')  # the original image's bytes
    assert aio.driver.get_disk_paths(server_id) == [new_disk]
    assert _shelved_image(aio, server_id) is None
    assert not os.path.exists(os.path.join(_image_dir(aio), image_id))


def test_failed_upload_keeps_the_retained_disk(make_aio, client_for):
    aio = make_aio(extra={('shelve', 'offload_mode'): 'full'})
    client = client_for(aio.url)
    server_id = _boot_with_pattern(client, aio)
    # A real failure, not a mock (and one root cannot override): the image
    # store's directory is replaced by a plain file while the upload runs.
    store = _image_dir(aio)
    os.rename(store, store + '.away')
    open(store, 'w').close()
    try:
        client.action(server_id, {'shelve': None})
        deadline = time.monotonic() + 30
        while True:
            server = client.server(server_id)
            if (server.get('fault') and
                    server['OS-EXT-STS:task_state'] is None):
                break
            assert time.monotonic() < deadline, server
            time.sleep(0.1)
    finally:
        os.unlink(store)
        os.rename(store + '.away', store)
    server = client.server(server_id)
    assert server['status'] == 'SHELVED_OFFLOADED'
    assert server['OS-EXT-STS:task_state'] is None
    assert server['lifecycle:retained_disk']['storage_group'] == 'group-a'
    assert _shelved_image(aio, server_id) is None
    assert not os.path.exists(os.path.join(
        aio.storage_path('group-a'), server_id, 'disk.shelve-upload'))
    client.action(server_id, {'unshelve': None})
    client.wait(server_id, 'ACTIVE')
    qemu_io(disk_of(aio, server_id), 'read -P 0x3c 8M 2M')


def test_escalation_by_age(make_aio, client_for):
    aio = make_aio(extra={('shelve', 'retained_disk_max_age'): 1,
                          ('shelve', 'escalation_interval'): 1})
    client = client_for(aio.url)
    server_id = _boot_with_pattern(client, aio)
    client.action(server_id, {'shelve': None})
    server = client.wait(server_id, 'SHELVED_OFFLOADED')
    assert server['lifecycle:retained_disk'] is not None
    server = _wait_fully_offloaded(client, aio, server_id, timeout=30)
    assert server['lifecycle:retained_disk'] is None
    assert not os.path.exists(os.path.join(aio.storage_path('group-a'),
                                           server_id))


def test_escalation_by_watermark_frees_the_oldest_first(make_aio,
                                                         client_for):
    aio = make_aio(extra={('shelve', 'storage_high_watermark'): 3,
                          ('shelve', 'storage_low_watermark'): 2,
                          ('shelve', 'escalation_interval'): 1})
    client = client_for(aio.url)
    status, body = client.request('GET', '/os-aggregates')
    group_a = next(a for a in body['aggregates']
                   if a['metadata'].get('storage_group') == 'group-a')
    # 1 GiB: high water at ~31 MiB, low at ~20 MiB.
    client.request('POST', '/os-aggregates/%s/action' % group_a['id'],
                   {'set_metadata': {'metadata': {'storage_capacity_gb':
                                                  '1'}}})
    older = _boot_with_pattern(client, aio, 'older', length='24M')
    newer = _boot_with_pattern(client, aio, 'newer', length='8M')
    for server_id in (older, newer):
        client.action(server_id, {'shelve': None})
        client.wait(server_id, 'SHELVED_OFFLOADED')
    _wait_fully_offloaded(client, aio, older, timeout=30)
    time.sleep(2)  # two more escalation rounds
    assert client.server(newer)['lifecycle:retained_disk'] is not None
    assert _shelved_image(aio, newer) is None


def test_unshelve_fallback_transfer(make_aio, client_for):
    aio = make_aio(extra={('shelve', 'unshelve_fallback'): 'transfer',
                          ('aio', 'host_memory_mb'): 512})
    client = client_for(aio.url)
    server_id = _boot_with_pattern(client, aio)
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED_OFFLOADED')
    for host in ('host-a1', 'host-a2'):
        client.wait(client.boot('filler', host=host), 'ACTIVE')
    client.action(server_id, {'unshelve': None})
    server = client.wait(server_id, 'ACTIVE')
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-b1'
    qemu_io(disk_of(aio, server_id, 'group-b'), 'read -P 0x3c 8M 2M')
    assert not os.path.exists(disk_of(aio, server_id, 'group-a'))


@pytest.mark.parametrize('mode', ['partial', 'full'])
def test_shelve_offload_api_escalates_only_in_full_mode(make_aio, client_for,
                                                         mode):
    aio = make_aio(extra={('shelve', 'offload_mode'): 'partial'})
    client = client_for(aio.url)
    server_id = _boot_with_pattern(client, aio)
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED_OFFLOADED')
    from lifecycle.conf import CONF
    CONF.set_override('offload_mode', mode, group='shelve')
    status, body = client.action(server_id, {'shelveOffload': None})
    if mode == 'partial':
        assert status == 409, json.dumps(body)
        assert client.server(server_id)['lifecycle:retained_disk']
    else:
        assert status == 202
        _wait_fully_offloaded(client, aio, server_id)
