"""The partial-offload lifecycle on a real libvirtd with QEMU (KVM when
/dev/kvm is usable, else TCG): a real guest process, a real qcow2 overlay,
the byte pattern checked with qemu-io."""

import os

import pytest

from lifecycle.virt import domain_xml
from tests.conftest import live_domain
from tests.functional.conftest import disk_of
from tests.functional.conftest import qemu_io

pytestmark = pytest.mark.slow


def test_shelve_unshelve_on_real_qemu(make_aio, client_for,
                                      system_libvirt_uri):
    aio = make_aio(system_libvirt_uri)
    client = client_for(aio.url)
    server_id = client.boot('real-guest', host='host-a1')
    client.wait(server_id, 'ACTIVE', timeout=120)
    disk = disk_of(aio, server_id)
    live = live_domain(system_libvirt_uri, server_id)
    assert live == {'running': True, 'disks': [disk]}
    # A real QEMU process runs it.
    assert os.path.exists('/run/libvirt/qemu/%s.pid' %
                          domain_xml.domain_name(server_id))

    # QEMU holds the image lock while it runs: write with the guest off.
    client.action(server_id, {'os-stop': None})
    client.wait(server_id, 'SHUTOFF', timeout=120)
    qemu_io(disk, 'write -P 0x5a 4M 2M')
    client.action(server_id, {'os-start': None})
    client.wait(server_id, 'ACTIVE', timeout=120)
    inode = os.stat(disk).st_ino
    used = client.hypervisor('host-a1')

    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED_OFFLOADED', timeout=120)
    assert live_domain(system_libvirt_uri, server_id) is None
    assert os.stat(disk).st_ino == inode
    freed = client.hypervisor('host-a1')
    assert freed['vcpus_used'] == used['vcpus_used'] - 1
    assert freed['memory_mb_used'] == used['memory_mb_used'] - 512

    client.action(server_id, {'unshelve': None})
    client.wait(server_id, 'ACTIVE', timeout=120)
    live = live_domain(system_libvirt_uri, server_id)
    assert live == {'running': True, 'disks': [disk]}
    assert os.stat(disk).st_ino == inode
    qemu_io(disk, 'read -P 0x5a 4M 2M')
    # The base image's header still shows through the overlay.
    qemu_io(disk, 'read -P 0x4c 0 64k')
    assert client.hypervisor('host-a1')['memory_mb_used'] == \
        used['memory_mb_used']

    status, _ = client.request('DELETE', '/servers/%s' % server_id)
    assert status == 204
