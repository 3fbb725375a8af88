"""The counting guest on real QEMU through the project's libvirt driver:
direct kernel boot, a clean ACPI shutdown that the guest really answers, and
what the guest wrote on its disk read back with qemu-io."""

import dataclasses
import os
import subprocess
import uuid

import pytest

from lifecycle import exception
from lifecycle.virt import domain_xml
from lifecycle.virt import driver as virt_driver
from tests.functional import guest_fixture
from tests.functional.guest_fixture import SerialConsole

pytestmark = pytest.mark.slow

BOOT_TIMEOUT = 120    # TCG boots it in a few seconds; leave room for load


def _spec(guest, disk: str) -> domain_xml.DomainSpec:
    return domain_xml.DomainSpec(
        uuid=str(uuid.uuid4()), display_name='counting-guest', vcpus=1,
        memory_mb=256, disk_path=disk, disk_format='qcow2', host='host-a1',
        user_id='user', project_id='project', flavor_name='m1.tiny',
        boot=domain_xml.KernelBoot(guest.kernel, guest.initrd,
                                   guest.cmdline))


def test_counts_writes_its_disk_and_answers_acpi(counting_guest, qemu_dir,
                                                 system_libvirt_uri):
    disk = os.path.join(qemu_dir, 'disk')
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', disk, '64M'],
                   check=True, capture_output=True)
    os.chmod(disk, 0o666)
    drv = virt_driver.LibvirtDriver(system_libvirt_uri,
                                    counting_guest.virt_type)
    drv.connect()
    spec = _spec(counting_guest, disk)
    drv.spawn(spec)
    console = SerialConsole(system_libvirt_uri, spec.uuid)
    try:
        console.wait_for(r'count 2 ', BOOT_TIMEOUT)
        counts = console.counts()
        assert [n for n, _, _ in counts] == list(range(len(counts)))
        assert len({boot for _, _, boot in counts}) == 1
        assert drv.get_disk_paths(spec.uuid) == [disk]

        # A generous timeout: the guest answers at once, so a clean
        # shutdown is not the timeout running out (that returns False).
        assert drv.power_off(spec.uuid, timeout=60) is True
        console.wait_for(r'power button pressed', 5)
        assert not drv.exists(spec.uuid) or \
            drv.get_power_state(spec.uuid) != 1
    finally:
        console.close()
        drv.undefine(spec.uuid)
        drv.close()
    # What the guest wrote through its virtio disk is in the qcow2 file.
    written = guest_fixture.disk_count(disk)
    assert written is not None and written >= 2, written


def _new_disk(qemu_dir: str) -> str:
    disk = os.path.join(qemu_dir, 'disk')
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', disk, '64M'],
                   check=True, capture_output=True)
    os.chmod(disk, 0o666)
    return disk


def _running_guest(guest, qemu_dir, uri):
    drv = virt_driver.LibvirtDriver(uri, guest.virt_type)
    drv.connect()
    spec = _spec(guest, _new_disk(qemu_dir))
    drv.spawn(spec)
    return drv, spec


def test_memory_saved_and_restored_on_another_host(counting_guest, qemu_dir,
                                                   system_libvirt_uri):
    drv, spec = _running_guest(counting_guest, qemu_dir, system_libvirt_uri)
    state = os.path.join(qemu_dir, 'memory')
    try:
        console = SerialConsole(system_libvirt_uri, spec.uuid)
        try:
            console.wait_for(r'count 3 ', BOOT_TIMEOUT)
            drv.save_memory(spec.uuid, state)
            before = console.counts()[-1]
        finally:
            console.close()
        assert drv.get_power_state(spec.uuid) != 1   # not running
        assert os.path.getsize(state) > 0
        drv.save_memory(spec.uuid, state)            # idempotent
        drv.undefine(spec.uuid)
        assert not drv.exists(spec.uuid)

        # Resumed under another host's definition: the same guest goes on.
        moved = dataclasses.replace(spec, host='host-a2')
        drv.restore_memory(moved, state)
        console = SerialConsole(system_libvirt_uri, spec.uuid)
        try:
            match = console.wait_for(guest_fixture.COUNT_RE, 60)
            count, uptime, boot = (int(match.group(1)),
                                   float(match.group(2)), match.group(3))
        finally:
            console.close()
        assert boot == before[2]              # no reboot
        assert count > before[0]              # the count continues
        assert uptime > before[1]             # and so does the uptime
        assert drv.list_instance_uuids('host-a2') == [spec.uuid]
        drv.restore_memory(moved, state)      # running: no-op
        assert os.path.exists(state)          # deleting it is the caller's
    finally:
        drv.undefine(spec.uuid)
        drv.close()


def test_damaged_state_leaves_a_cold_bootable_definition(
        counting_guest, qemu_dir, system_libvirt_uri):
    drv, spec = _running_guest(counting_guest, qemu_dir, system_libvirt_uri)
    state = os.path.join(qemu_dir, 'memory')
    try:
        console = SerialConsole(system_libvirt_uri, spec.uuid)
        try:
            console.wait_for(r'count 1 ', BOOT_TIMEOUT)
            first_boot = console.counts()[0][2]
        finally:
            console.close()
        drv.save_memory(spec.uuid, state)
        size = os.path.getsize(state)
        with open(state, 'r+b') as f:         # keep the header, lose RAM
            f.truncate(min(size // 2, 1024 * 1024))

        with pytest.raises(exception.SavedStateUnusable):
            drv.restore_memory(spec, state)
        assert drv.get_power_state(spec.uuid) != 1

        drv.spawn(spec)                       # the cold boot from the disk
        console = SerialConsole(system_libvirt_uri, spec.uuid)
        try:
            console.wait_for(r'count 0 ', BOOT_TIMEOUT)
            assert console.counts()[0][2] != first_boot
        finally:
            console.close()
    finally:
        drv.undefine(spec.uuid)
        drv.close()
