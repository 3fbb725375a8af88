"""``lifecycle-manage image import | list``: a real qemu-img, a real local
image directory, read back by the image source the services use."""

import hashlib
import json
import os
import shutil
import subprocess
from concurrent import futures

import pytest

from lifecycle.image import local as local_image
from tests.conftest import require
from tests.functional.manage.helpers import run_process


@pytest.fixture
def deployment(tmp_path):
    require(shutil.which('qemu-img') is not None, 'qemu-img')
    images = tmp_path / 'images'
    config = tmp_path / 'lifecycle.conf'
    config.write_text('[database]\nconnection = sqlite:///%s\n'
                      '[image]\nsource = local\nlocal_dir = %s\n'
                      % (tmp_path / 'db.sqlite', images))
    return str(config), str(images)


def _qcow2(path, size='64M', pattern=True):
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path),
                    size], check=True)
    if pattern:
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        'write -P 0x3c 0 1M', str(path)], check=True,
                       capture_output=True)
    return str(path)


def test_import_registers_an_image_the_services_read(deployment, tmp_path):
    config, images_dir = deployment
    source = _qcow2(tmp_path / 'cirros.qcow2')
    with open(source, 'rb') as f:
        data = f.read()

    result = run_process(config, 'image', 'import', source, '--name',
                         'cirros', '--property', 'os_distro=cirros',
                         '--format', 'json')
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc['name'] == 'cirros'
    assert doc['disk_format'] == 'qcow2'  # detected, not given
    assert doc['status'] == 'active'
    assert doc['size'] == len(data)
    assert doc['virtual_size'] == 64 * 1024 * 1024
    assert doc['checksum'] == hashlib.md5(data).hexdigest()
    assert doc['os_hash_algo'] == 'sha512'
    assert doc['os_hash_value'] == hashlib.sha512(data).hexdigest()
    assert doc['properties'] == {'os_distro': 'cirros'}

    # The layout the local image source reads: <id> and <id>.json.
    assert sorted(os.listdir(images_dir)) == [doc['id'], doc['id'] + '.json']
    service = local_image.LocalImageService(images_dir)
    assert service.find_by_name('cirros')['id'] == doc['id']
    fetched = tmp_path / 'fetched'
    service.download(doc['id'], str(fetched))  # verifies both hashes
    assert fetched.read_bytes() == data

    listed = run_process(config, 'image', 'list', '--format', 'json')
    assert listed.returncode == 0, listed.stderr
    assert [i['id'] for i in json.loads(listed.stdout)['images']] == [
        doc['id']]

    # A raw file: detected as raw.
    raw = tmp_path / 'blank.raw'
    raw.write_bytes(b'\x00' * 4096 + b'data' * 1024)
    result = run_process(config, 'image', 'import', str(raw), '--name',
                         'blank', '--format', 'json')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['disk_format'] == 'raw'


def test_bad_imports_exit_2_and_add_nothing(deployment, tmp_path):
    config, images_dir = deployment
    base = _qcow2(tmp_path / 'base.qcow2', pattern=False)
    overlay = tmp_path / 'overlay.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2',
                    '-b', base, str(overlay)], check=True)
    good = _qcow2(tmp_path / 'good.qcow2', pattern=False)
    assert run_process(config, 'image', 'import', good, '--name',
                       'taken').returncode == 0
    before = sorted(os.listdir(images_dir))

    cases = (((str(overlay), '--name', 'x'), 'backing file'),
             ((good, '--name', 'x', '--disk-format', 'raw'),
              'declared format raw but content is qcow2'),
             ((str(tmp_path / 'nope.img'), '--name', 'x'), 'cannot read'),
             ((str(tmp_path), '--name', 'x'), 'not a regular file'),
             ((good, '--name', 'taken'), 'exists already'),
             ((good,), '--name'))  # --name is required
    # Separate processes, run side by side (each spends seconds importing);
    # none may add anything, alone or beside the others.
    with futures.ThreadPoolExecutor(len(cases)) as pool:
        results = list(pool.map(
            lambda case: run_process(config, 'image', 'import', *case[0]),
            cases))
    for (argv, message), result in zip(cases, results, strict=True):
        assert result.returncode == 2, (argv, result.stderr)
        assert message in result.stderr, (argv, result.stderr)
    assert sorted(os.listdir(images_dir)) == before
