"""Hibernate-shelve of the counting guest through the service API, on real
QEMU (qemu:///system; TCG when KVM cannot boot a Linux kernel here): booted
by direct kernel boot from images with ``kernel_id``/``ramdisk_id``, its
memory saved on the storage group at shelve, resumed on another host of the
group at unshelve with its counter going on."""

import os
import subprocess

import pytest

from lifecycle.compute import hibernate
from lifecycle.image import local
from tests.conftest import live_domain
from tests.functional import guest_fixture
from tests.functional.conftest import disk_of
from tests.functional.guest_fixture import SerialConsole
from tests.functional.manage.helpers import run_json
from tests.functional.manage.helpers import write_config
from tests.functional.test_saved_state import rewrite_saved_on

pytestmark = pytest.mark.slow

BOOT_TIMEOUT = 180
GROUP = 'group-a'


def _guest_image(aio, guest, tmp_dir: str) -> str:
    """A blank root disk image that boots the counting guest's kernel."""
    kernel = aio.images.create('counting-guest-kernel', guest.kernel, 'raw')
    ramdisk = aio.images.create('counting-guest-ramdisk', guest.initrd, 'raw')
    root = os.path.join(tmp_dir, 'root.qcow2')
    local.make_blank_image(root, 64)
    image = aio.images.create(
        'counting-guest', root, 'qcow2',
        properties={'kernel_id': kernel['id'], 'ramdisk_id': ramdisk['id'],
                    'os_command_line': guest.cmdline})
    return image['id']


@pytest.fixture
def guest_aio(make_aio, system_libvirt_uri, counting_guest):
    return make_aio(system_libvirt_uri,
                    {('libvirt', 'virt_type'): counting_guest.virt_type})


def _boot(aio, client, guest, tmp_dir, uri, host='host-a1'):
    image_id = _guest_image(aio, guest, tmp_dir)
    server_id = client.boot('counting', image=image_id, host=host)
    client.wait(server_id, 'ACTIVE', timeout=BOOT_TIMEOUT)
    console = SerialConsole(uri, server_id)
    try:
        console.wait_for(r'count 3 ', BOOT_TIMEOUT)
        last = console.counts()[-1]
    finally:
        console.close()
    return server_id, last


def _hibernate(client, server_id):
    status, body = client.action(
        server_id, {'shelve': {'lifecycle:keep_memory': True}})
    assert status == 202, body
    return client.wait(server_id, 'SHELVED_OFFLOADED', timeout=BOOT_TIMEOUT)


def _state_file(aio, server_id):
    return os.path.join(aio.storage_path(GROUP), server_id,
                        hibernate.MEMORY_STATE_NAME)


def test_resumes_on_another_host_of_the_group(guest_aio, client_for,
                                              counting_guest, qemu_dir,
                                              system_libvirt_uri, tmp_path):
    aio, uri = guest_aio, system_libvirt_uri
    client = client_for(aio.url)
    used = client.hypervisor('host-a1')['memory_mb_used']
    server_id, before = _boot(aio, client, counting_guest, qemu_dir, uri)
    disk = disk_of(aio, server_id)
    inode = os.stat(disk).st_ino
    running = client.hypervisor('host-a1')['memory_mb_used']
    assert running > used

    server = _hibernate(client, server_id)
    assert server['lifecycle:memory_state'] is not None
    assert live_domain(uri, server_id) is None        # domain gone
    assert client.hypervisor('host-a1')['memory_mb_used'] == used
    state = _state_file(aio, server_id)
    assert os.path.getsize(state) > 0                 # on the group storage
    sysmeta = aio.db.instance_get(server_id).system_metadata
    assert sysmeta['shelved_memory_state'] == os.path.relpath(
        state, aio.storage_path(GROUP))
    config = write_config(aio, tmp_path / 'manage.conf')
    code, doc = run_json(config, 'shelved', 'list')
    assert code == 0
    row = next(r for r in doc['shelved'] if r['uuid'] == server_id)
    assert row['memory_state'] == {
        'location': sysmeta['shelved_memory_state'],
        'size': os.lstat(state).st_blocks * 512}
    code, doc = run_json(config, 'shelved', 'show', server_id)
    assert code == 0
    assert doc['memory_state']['location'] == sysmeta['shelved_memory_state']

    status, body = client.action(server_id,
                                 {'unshelve': {'host': 'host-a2'}})
    assert status == 202, body
    server = client.wait(server_id, 'ACTIVE', timeout=BOOT_TIMEOUT)
    assert server['OS-EXT-SRV-ATTR:host'] == 'host-a2'
    assert server['lifecycle:memory_state'] is None
    console = SerialConsole(uri, server_id)
    try:
        match = console.wait_for(guest_fixture.COUNT_RE, 60)
    finally:
        console.close()
    count, uptime, boot = (int(match.group(1)), float(match.group(2)),
                           match.group(3))
    assert boot == before[2], 'the guest was booted again'
    assert count > before[0]
    assert uptime > before[1]
    assert live_domain(uri, server_id) == {'running': True, 'disks': [disk]}
    assert os.stat(disk).st_ino == inode              # the same disk file
    assert not os.path.exists(state)                  # state file gone
    assert aio.db.instance_get(server_id).fault is None
    assert client.hypervisor('host-a2')['memory_mb_used'] == running - used


def _truncate(uri, state):
    size = os.path.getsize(state)
    with open(state, 'r+b') as f:       # the header stays, the RAM goes
        f.truncate(min(size // 2, 1024 * 1024))


def _from_newer_qemu(uri, state):
    """As if saved on a host of the group with a newer QEMU: refused
    before anything is defined (lifecycle/virt/saved_state.py)."""
    rewrite_saved_on(uri, state, lambda e: e.set('qemu', '999.0.0'))


# how the state is made unusable -> what the fault must say
UNUSABLE = {'damaged': (_truncate, None),
            'newer-qemu': (_from_newer_qemu,
                           'it was saved by QEMU 999.0.0 on host-a1, this '
                           'host has the older QEMU')}


@pytest.mark.parametrize('unusable', sorted(UNUSABLE))
def test_unusable_state_boots_cold_with_a_fault(guest_aio, client_for,
                                                counting_guest, qemu_dir,
                                                system_libvirt_uri, unusable):
    aio, uri = guest_aio, system_libvirt_uri
    client = client_for(aio.url)
    server_id, before = _boot(aio, client, counting_guest, qemu_dir, uri)
    disk = disk_of(aio, server_id)
    inode = os.stat(disk).st_ino
    _hibernate(client, server_id)
    state = _state_file(aio, server_id)
    spoil, reason = UNUSABLE[unusable]
    spoil(uri, state)

    status, body = client.action(server_id, {'unshelve': None})
    assert status == 202, body
    client.wait(server_id, 'ACTIVE', timeout=BOOT_TIMEOUT)
    console = SerialConsole(uri, server_id)
    try:
        match = console.wait_for(guest_fixture.COUNT_RE, BOOT_TIMEOUT)
    finally:
        console.close()
    assert match.group(3) != before[2], 'restored from a damaged state?'
    fault = aio.db.instance_get(server_id).fault
    assert fault is not None and fault.details.startswith(
        'SavedStateUnusable: ')
    assert fault.message.endswith('; booted from the disk'), fault.message
    if reason:
        assert reason in fault.message, fault.message
    assert os.stat(disk).st_ino == inode              # disk kept
    assert live_domain(uri, server_id) == {'running': True, 'disks': [disk]}
    assert not os.path.exists(state)
    # The guest's disk still holds what it wrote before the hibernate.
    subprocess.run(['qemu-img', 'check', '-U', disk], check=True,
                   capture_output=True)
