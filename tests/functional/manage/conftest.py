"""The all-in-one of the ``lifecycle-manage`` tests, with every kind of
leftover planted for real (see test_disks.py)."""

import hashlib
import os
import subprocess
import uuid as uuidlib

import libvirt
import pytest

from lifecycle.storage import paths
from lifecycle.virt import domain_xml
from tests.functional.conftest import disk_of
from tests.functional.conftest import qemu_io

from tests.functional.manage.helpers import (
    _boot,
    _old,
    _shelve,
    MiB,
    files_under,
    write_config)


# -- the planted deployment ---------------------------------------------------

@pytest.fixture
def aio(make_aio):
    # The tests compare every file and row before and after a command: no
    # heartbeat may write compute_nodes meanwhile, however slow the machine.
    return make_aio(extra={('compute', 'report_interval'): 3600,
                           ('compute', 'service_down_time'): 7200})


@pytest.fixture
def config(aio, tmp_path):
    return write_config(aio, tmp_path / 'manage.conf')








@pytest.fixture
def planted(aio, client, tmp_path):
    """A deployment with healthy instances and one of each leftover."""
    a_root = aio.storage_path('group-a')
    b_root = aio.storage_path('group-b')
    image_id = client.default_image
    base_name = hashlib.sha1(image_id.encode()).hexdigest()
    default_base = os.path.join(a_root, '_base', base_name)
    outside = tmp_path / 'outside'
    outside.mkdir()
    secret = outside / 'secret.img'
    secret.write_bytes(b'not yours' * 100000)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
                    str(outside / 'disk'), '64M'], check=True)

    healthy = {
        'active': _boot(client, 'keep-active', 'host-a1'),
        'shelved': _boot(client, 'keep-shelved', 'host-a2'),
        'b': _boot(client, 'keep-b', 'host-b1'),
    }
    qemu_io(disk_of(aio, healthy['shelved']), 'write -P 0x5a 0 2M')
    _shelve(client, healthy['shelved'])

    # missing-disk: offloaded, then its retained disk vanished.
    lost = _boot(client, 'lost', 'host-a1')
    _shelve(client, lost)
    os.unlink(disk_of(aio, lost))

    # stale-metadata: an active instance with shelved_* keys left over.
    stale = _boot(client, 'stale', 'host-b1')
    aio.db.instance_update(stale, {}, system_metadata={
        'shelved_at': '2020-01-01T00:00:00', 'shelved_host': 'host-b1',
        'shelved_disk': '%s/disk' % stale})

    # orphan-disk 1: an instance whose delete lost track of its directory.
    gone = _boot(client, 'gone', 'host-a2')
    qemu_io(disk_of(aio, gone), 'write -P 0x11 0 3M')
    aio.driver.undefine(gone)
    aio.db.release_claim(gone)
    aio.db.instance_mark_deleted(gone)

    # orphan-disk 2: a directory no instance ever had, a real overlay over
    # the group's base with data in it, and a symlink out of the tree.
    stray = str(uuidlib.uuid4())
    stray_dir = os.path.join(a_root, stray)
    os.mkdir(stray_dir)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw',
                    '-b', default_base, os.path.join(stray_dir, 'disk'),
                    '1G'], check=True)
    qemu_io(os.path.join(stray_dir, 'disk'), 'write -P 0x22 0 4M')
    # Made by this project's storage (its disk.info, as a purged row would
    # leave it): ours, so an orphan, not foreign data.
    with open(os.path.join(stray_dir, 'disk.info'), 'w') as f:
        f.write('{"disk": "qcow2"}')
    os.symlink(str(secret), os.path.join(stray_dir, 'escape'))

    # A symlink named like an instance directory, and one named like a
    # base, both pointing outside: never followed, never removed.
    link_dir = os.path.join(a_root, str(uuidlib.uuid4()))
    os.symlink(str(outside), link_dir)
    link_base = os.path.join(b_root, '_base',
                             hashlib.sha1(b'evil-image').hexdigest())
    os.symlink(str(secret), link_base)
    _old(link_base)

    # unused-base: a base in group b no disk uses, last used 2 hours ago.
    ghost_base = os.path.join(b_root, '_base',
                              hashlib.sha1(b'ghost-image').hexdigest())
    with open(ghost_base, 'wb') as f:
        f.write(os.urandom(5 * MiB))
    _old(ghost_base)

    # orphan-domain: defined straight through libvirt, with our metadata.
    ghost_domain = str(uuidlib.uuid4())
    conn = libvirt.open('test:///default')
    conn.defineXML(domain_xml.build_domain_xml(domain_xml.DomainSpec(
        uuid=ghost_domain, display_name='ghost', vcpus=1, memory_mb=128,
        disk_path=os.path.join(a_root, ghost_domain, 'disk'),
        disk_format='qcow2', host='host-a2', user_id='u', project_id='p',
        flavor_name='m1.tiny'), 'qemu'))
    conn.close()

    expected = {
        ('missing-disk', lost), ('stale-metadata', stale),
        ('orphan-disk', gone), ('orphan-disk', stray),
        ('unused-base', ghost_base), ('orphan-domain', ghost_domain)}
    allocated = {
        gone: paths.allocated_bytes(os.path.join(a_root, gone)),
        stray: paths.allocated_bytes(stray_dir),
        ghost_base: paths.allocated_bytes(ghost_base),
    }
    return {'expected': expected, 'allocated': allocated,
            'healthy': healthy, 'lost': lost, 'stale': stale, 'gone': gone,
            'stray': stray, 'ghost_base': ghost_base,
            'ghost_domain': ghost_domain, 'outside': str(outside),
            'outside_files': files_under(str(outside)),
            'secret': str(secret), 'link_dir': link_dir,
            'link_base': link_base}
