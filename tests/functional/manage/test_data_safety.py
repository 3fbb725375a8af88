"""``disks audit | cleanup`` never touch what is not the project's: an
``instances_path`` shared with Nova (Nova's instance directories, its
``_base`` names, ``locks/`` and ``compute_nodes``, laid out for real with
real qcow2 files), and the audit changes nothing at all, not even the
image directory's existence or mode; a failed check never hides what the
other checks found."""

import hashlib
import json
import os
import shutil
import subprocess
import uuid as uuidlib

import pytest

from lifecycle.conf import CONF

from tests.functional.manage.helpers import (
    _old,
    db_rows,
    domains,
    run,
    run_json,
    tree_snapshot,
    write_config)

FOREIGN = 4


def _nova_instances_dir(root: str) -> dict:
    """What nova-compute with instances_path = ``root`` leaves there: an
    instance directory (qcow2 over a _base file, Nova's disk.info keyed by
    absolute path, console.log), a resized base, a plain base named as
    Nova names it (sha1 of the image id, as this project does), the lock
    directory and the compute_nodes file of its image cache."""
    os.makedirs(os.path.join(root, '_base'), exist_ok=True)
    nova_image = str(uuidlib.uuid4())
    base = os.path.join(root, '_base',
                        hashlib.sha1(nova_image.encode()).hexdigest())
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', base, '32M'],
                   check=True)
    _old(base)
    resized = base + '_10'
    shutil.copyfile(base, resized)
    _old(resized)
    server = str(uuidlib.uuid4())
    inst_dir = os.path.join(root, server)
    os.mkdir(inst_dir)
    disk = os.path.join(inst_dir, 'disk')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw',
                    '-b', resized, disk], check=True)
    with open(os.path.join(inst_dir, 'disk.info'), 'w') as f:
        json.dump({disk: 'qcow2'}, f)
    with open(os.path.join(inst_dir, 'console.log'), 'w') as f:
        f.write('login:\n')
    os.makedirs(os.path.join(root, 'locks'), exist_ok=True)
    open(os.path.join(root, 'locks', 'nova-storage-registry-lock'),
         'w').close()
    with open(os.path.join(root, 'compute_nodes'), 'w') as f:
        json.dump({'nova-host-1': 1700000000.0}, f)
    return {'server': server, 'dir': inst_dir, 'base': base,
            'resized': resized,
            'paths': [inst_dir, base, resized, os.path.join(root, 'locks'),
                      os.path.join(root, 'compute_nodes')]}


def _our_orphan(root: str) -> str:
    """An instance directory this project's storage made (its disk.info)
    whose instance no longer exists: what cleanup is for."""
    name = str(uuidlib.uuid4())
    os.mkdir(os.path.join(root, name))
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
                    os.path.join(root, name, 'disk'), '16M'], check=True)
    with open(os.path.join(root, name, 'disk.info'), 'w') as f:
        f.write('{"disk": "qcow2"}')
    return name


def _state(aio) -> tuple:
    snapshot = {p: v for p, v in tree_snapshot(aio.state_dir).items()
                if '.sqlite' not in p}
    return snapshot, db_rows(aio), domains()


def test_shared_instances_path_is_refused_and_nothing_of_novas_touched(
        aio, config, client):
    root = aio.storage_path('group-a')
    server_id = client.boot('ours', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    nova = _nova_instances_dir(root)
    orphan = _our_orphan(root)
    before = _state(aio)

    for command in (('disks', 'audit'), ('disks', 'cleanup', '--yes'),
                    ('disks', 'cleanup', '--dry-run'),
                    ('disks', 'audit', '--category', 'orphan-disk'),
                    ('disks', 'cleanup', '--yes', '--category',
                     'unused-base')):
        code, out, err = run(config, *command)
        assert code == FOREIGN, (command, code, out, err)
        assert root in err and 'does not own' in err
        assert nova['server'] in err
        assert 'compute_nodes' in err and 'locks' in err
        assert os.path.basename(nova['resized']) in err
        assert _state(aio) == before, command

    # Checks that remove no file still run on such storage.
    code, doc = run_json(config, 'disks', 'audit', '--category',
                         'stale-metadata')
    assert code == 0, doc

    # Allowed: our orphan is found and removed; Nova's directory, its
    # bases (even the one named as ours) and files stay, byte for byte.
    nova_before = tree_snapshot(*nova['paths'])
    code, doc = run_json(config, 'disks', 'audit', '--allow-foreign-storage')
    assert code == 3, doc
    assert {(f['category'], f['resource']) for f in doc['findings']} == {
        ('orphan-disk', orphan)}
    [report] = doc['foreign_storage']
    assert report['instance_dirs'] == [nova['dir']]
    assert report['bases'] == [nova['resized']]
    code, doc = run_json(config, 'disks', 'cleanup', '--yes',
                         '--allow-foreign-storage')
    assert code == 0, doc
    assert [(r['resource'], r['action']) for r in doc['results']] == [
        (orphan, 'removed')]
    assert not os.path.exists(os.path.join(root, orphan))
    assert tree_snapshot(*nova['paths']) == nova_before
    assert os.path.exists(os.path.join(root, server_id, 'disk'))
    assert client.server(server_id)['status'] == 'ACTIVE'


@pytest.mark.parametrize('kind', ['instance-dir', 'resized-base', 'locks',
                                  'compute_nodes', 'unmarked-dir'])
def test_each_kind_of_foreign_data_is_refused(aio, config, kind):
    root = aio.storage_path('group-b')
    os.makedirs(os.path.join(root, '_base'), exist_ok=True)
    if kind == 'instance-dir':
        nova = _nova_instances_dir(os.path.join(aio.state_dir, 'scratch'))
        shutil.copytree(nova['dir'], os.path.join(root, nova['server']),
                        symlinks=True)
    elif kind == 'resized-base':
        with open(os.path.join(root, '_base', 'a' * 40 + '_20'), 'wb') as f:
            f.write(b'x' * 4096)
    elif kind == 'locks':
        os.mkdir(os.path.join(root, 'locks'))
    elif kind == 'compute_nodes':
        with open(os.path.join(root, 'compute_nodes'), 'w') as f:
            f.write('{}')
    else:  # a UUID directory with a disk, no disk.info, unknown to us
        name = str(uuidlib.uuid4())
        os.mkdir(os.path.join(root, name))
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
                        os.path.join(root, name, 'disk'), '16M'], check=True)
    before = _state(aio)
    code, out, err = run(config, 'disks', 'cleanup', '--yes')
    assert code == FOREIGN, (out, err)
    assert root in err
    assert _state(aio) == before


def test_audit_changes_nothing_not_even_the_image_directory(
        aio, tmp_path, client):
    server_id = client.boot('ours', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    _our_orphan(aio.storage_path('group-b'))
    missing_images = os.path.join(aio.state_dir, 'no-images-here')
    config = write_config(aio, tmp_path / 'missing-images.conf', sections={
        'image': {'local_dir': missing_images}})
    images_dir = os.path.join(aio.state_dir, 'images')
    os.chmod(images_dir, 0o700)  # an operator's choice: never "fixed"
    before = _state(aio)

    code, doc = run_json(config, 'disks', 'audit')
    assert code == 3, doc
    assert not os.path.exists(missing_images)
    code, doc = run_json(write_config(aio, tmp_path / 'aio.conf'),
                         'disks', 'audit')
    assert code == 3, doc
    assert _state(aio) == before
    assert os.stat(images_dir).st_mode & 0o777 == 0o700


def test_failed_check_with_findings_reports_both(aio, config):
    orphan = _our_orphan(aio.storage_path('group-a'))
    # A libvirt that cannot be reached, for real: nothing listens there.
    # (The harness's override of [libvirt] connection_uri reaches private
    # ConfigOpts too -- option groups are shared objects -- so it is the
    # override that changes, for the command only; the running all-in-one
    # keeps its open connection.)
    uri = CONF.libvirt.connection_uri
    CONF.set_override('connection_uri', 'qemu+tcp://127.0.0.1:1/system',
                      group='libvirt')
    try:
        code, out, err = run(config, 'disks', 'audit', '--format', 'json')
        doc = json.loads(out)
        assert code == 3, (out, err)  # the finding is not hidden behind 1
        assert [f['resource'] for f in doc['findings']] == [orphan]
        assert doc['complete'] is False, doc
        assert 'libvirt domains not checked' in doc['errors'][0]
        assert 'ERROR: libvirt domains not checked' in err

        # Nothing found by the checks that ran: the failure is exit code 1.
        shutil.rmtree(os.path.join(aio.storage_path('group-a'), orphan))
        code, out, err = run(config, 'disks', 'audit')
        assert code == 1, (out, err)
        assert 'by the checks that ran' in out
        assert 'ERROR: libvirt domains not checked' in err
    finally:
        CONF.set_override('connection_uri', uri, group='libvirt')
