"""``lifecycle-manage shelved list|show|full-offload|purge-deleted``, exit
codes and leftover shelved images, against a real populated all-in-one."""

import datetime
import io
import json
import os
import time
import uuid as uuidlib

import sqlalchemy as sa

from lifecycle.db import models
from tests.functional.conftest import disk_of
from tests.functional.conftest import qemu_io

from tests.functional.manage.helpers import (
    _boot,
    _shelve,
    MiB,
    TTY,
    db_rows,
    files_under,
    run,
    run_json,
    run_process,
    write_config)


# -- shelved list / show ------------------------------------------------------

def test_shelved_list_and_show(aio, client, config):
    server_id = _boot(client, 'shelf', 'host-a1')
    qemu_io(disk_of(aio, server_id), 'write -P 0x33 0 3M')
    _shelve(client, server_id)
    other = _boot(client, 'other', 'host-b1')
    _shelve(client, other)
    _boot(client, 'running', 'host-a2')

    code, doc = run_json(config, 'shelved', 'list')
    assert code == 0
    assert {r['uuid'] for r in doc['shelved']} == {server_id, other}
    row = next(r for r in doc['shelved'] if r['uuid'] == server_id)
    assert row['storage_group'] == 'group-a'
    assert row['shelved_host'] == 'host-a1'
    assert row['disk'] == disk_of(aio, server_id)
    assert row['size_on_disk'] == os.lstat(
        disk_of(aio, server_id)).st_blocks * 512

    code, doc = run_json(config, 'shelved', 'list', '--group', 'group-b')
    assert [r['uuid'] for r in doc['shelved']] == [other]
    code, doc = run_json(config, 'shelved', 'list', '--older-than', '1h')
    assert (code, doc['shelved']) == (0, [])
    # Shelved "three days ago".
    aio.db.instance_update(other, {}, system_metadata={
        'shelved_at': (datetime.datetime.utcnow() -
                       datetime.timedelta(days=3)).isoformat()})
    code, doc = run_json(config, 'shelved', 'list', '--older-than', '2d')
    assert [r['uuid'] for r in doc['shelved']] == [other]

    code, out, _err = run(config, 'shelved', 'list')
    assert code == 0 and server_id in out and 'group-a' in out

    code, doc = run_json(config, 'shelved', 'show', server_id)
    assert code == 0
    disk = disk_of(aio, server_id)
    assert doc['disk'] == disk and doc['disk_present'] is True
    assert doc['storage_group'] == 'group-a'
    assert doc['since'] == aio.db.instance_get(
        server_id).system_metadata['shelved_at']
    assert doc['format'] == 'qcow2'
    assert doc['virtual_size'] == 1024 ** 3
    assert doc['size_on_disk'] == os.lstat(disk).st_blocks * 512
    assert doc['delta_over_base'] == doc['size_on_disk'] >= 3 * MiB
    assert doc['base_file'].startswith(
        os.path.join(aio.storage_path('group-a'), '_base') + os.sep)

    code, out, _err = run(config, 'shelved', 'show', server_id)
    assert code == 0 and 'delta_over_base' in out and '(%d bytes)' % \
        doc['size_on_disk'] in out


def test_exit_codes(aio, client, config, tmp_path):
    running = _boot(client, 'running', 'host-a2')
    assert run(config, 'shelved', 'show', 'not-a-uuid')[0] == 2
    assert run(config, 'shelved', 'show', str(uuidlib.uuid4()))[0] == 1
    code, _out, err = run(config, 'shelved', 'show', running)
    assert code == 1 and 'not shelved' in err
    assert run(config, 'shelved', 'list', '--older-than', '7 years')[0] == 2
    assert run(config, 'disks', 'audit', '--category', 'nope')[0] == 2
    assert run(config, 'disks', 'frobnicate')[0] == 2
    assert run(config, 'shelved', 'list', '--format', 'xml')[0] == 2
    assert run(config, 'disks', 'audit')[0] == 0

    # Configuration errors, in real processes (in this one, the aio's
    # overrides of [aio] options are visible to any ConfigOpts).
    no_db = tmp_path / 'no-db.conf'
    no_db.write_text('[DEFAULT]\n')
    result = run_process(str(no_db), 'disks', 'audit')
    assert result.returncode == 2
    assert '[database] connection is not set' in result.stderr
    no_aio_db = tmp_path / 'missing.conf'
    no_aio_db.write_text('[aio]\nstate_dir = %s\n' % (tmp_path / 'none'))
    result = run_process(str(no_aio_db), 'shelved', 'list')
    assert result.returncode == 2
    assert 'no all-in-one database' in result.stderr
    assert not (tmp_path / 'none').exists()
    # A hypervisor that cannot be reached: the audit is incomplete.
    bad_uri = tmp_path / 'bad-uri.conf'
    bad_uri.write_text(open(config).read().replace(
        'test:///default', 'qemu+tcp://127.0.0.1:1/system'))
    result = run_process(str(bad_uri), 'disks', 'audit', '--format', 'json')
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)['errors']


# -- shelved purge-deleted ----------------------------------------------------

def test_purge_deleted(aio, client, config):
    doomed = _boot(client, 'doomed', 'host-a1')
    kept = _boot(client, 'kept', 'host-a1')
    _shelve(client, doomed)
    assert client.request('DELETE', '/servers/%s' % doomed)[0] == 204
    import time
    deadline = time.monotonic() + 30
    while client.request('GET', '/servers/%s' % doomed)[0] != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    aio.db.instance_fault_create(doomed, 500, 'old trouble')
    with aio.db.session() as session:
        session.add(models.InstanceMetadata(instance_uuid=doomed, key='k',
                                            value='v'))
        session.add(models.InstanceSystemMetadata(
            instance_uuid=doomed, key='extra', value='x'))

    def rows():
        with aio.db.engine.connect() as conn:
            return {t: conn.execute(sa.select(sa.func.count()).select_from(
                models.Base.metadata.tables[t]).where(
                models.Base.metadata.tables[t].c[col] == doomed)).scalar()
                for t, col in (('instances', 'uuid'),
                               ('instance_metadata', 'instance_uuid'),
                               ('instance_system_metadata', 'instance_uuid'),
                               ('instance_faults', 'instance_uuid'))}

    before = db_rows(aio)
    assert rows() == {'instances': 1, 'instance_metadata': 1,
                      'instance_system_metadata': 5, 'instance_faults': 1}
    code, doc = run_json(config, 'shelved', 'purge-deleted', '--dry-run')
    assert code == 0
    assert [r['uuid'] for r in doc['instances']] == [doomed]
    assert doc['instances'][0]['faults'] == 1
    code, _out, err = run(config, 'shelved', 'purge-deleted')
    assert code == 2 and '--yes' in err
    code, doc = run_json(config, 'shelved', 'purge-deleted', '--yes',
                         '--older-than', '1d')
    assert (code, doc['purged'], doc['instances']) == (0, 0, [])
    assert db_rows(aio) == before

    code, doc = run_json(config, 'shelved', 'purge-deleted', '--yes')
    assert (code, doc['purged']) == (0, 1)
    assert rows() == {'instances': 0, 'instance_metadata': 0,
                      'instance_system_metadata': 0, 'instance_faults': 0}
    assert aio.db.instance_get(kept).vm_state == 'active'


def test_fully_offloaded_instances_are_no_leftovers(make_aio, client_for,
                                                    tmp_path):
    """With [shelve] offload_mode = full the disk becomes an image and the
    instance directory goes: nothing for the audit to report, and
    ``shelved list`` shows no disk."""
    aio = make_aio(extra={('shelve', 'offload_mode'): 'full'})
    client = client_for(aio.url)
    config = write_config(aio, tmp_path / 'full.conf')
    server_id = _boot(client, 'full', 'host-a1')
    _shelve(client, server_id)
    sysmeta = aio.db.instance_get(server_id).system_metadata
    assert sysmeta.get('shelved_image_id') and not sysmeta.get(
        'shelved_disk')
    assert not os.path.exists(os.path.join(aio.storage_path('group-a'),
                                           server_id))
    code, doc = run_json(config, 'disks', 'audit')
    assert (code, doc['findings']) == (0, []), doc
    code, doc = run_json(config, 'shelved', 'list')
    assert [(r['uuid'], r['size_on_disk']) for r in doc['shelved']] == [
        (server_id, None)]


def test_shelved_full_offload_escalates_to_full(aio, client, config):
    older = _boot(client, 'older', 'host-a1')
    _shelve(client, older)
    newer = _boot(client, 'newer', 'host-a2')
    _shelve(client, newer)
    storage = aio.storage_path('group-a')
    before = files_under(storage)

    code, _out, err = run(config, 'shelved', 'full-offload', older)
    assert code == 2 and '--yes' in err
    code, doc = run_json(config, 'shelved', 'full-offload', older,
                         '--dry-run')
    assert code == 0 and doc['dry_run']
    assert [i['uuid'] for i in doc['instances']] == [older]
    assert files_under(storage) == before

    code, doc = run_json(config, 'shelved', 'full-offload', older, '--yes')
    assert code == 0, doc
    [row] = doc['instances']
    assert row['action'] == 'offloaded' and row['image_id']
    assert not os.path.exists(os.path.join(storage, older))
    assert os.path.exists(os.path.join(storage, newer, 'disk'))
    image = aio.images.get(row['image_id'])
    assert image['properties']['instance_uuid'] == older
    assert image['properties']['lifecycle_shelved_instance'] == older
    assert client.server(older)['lifecycle:retained_disk'] is None

    # The deprecated name still works (and says so).
    code, _out, err = run(config, 'shelved', 'offload', older, '--yes')
    assert code == 2 and older in err  # no retained disk any more
    assert 'deprecated' in err
    client.action(older, {'unshelve': None})
    client.wait(older, 'ACTIVE')


def test_full_offload_of_every_group_asks_first(aio, client, config,
                                                monkeypatch):
    a = _boot(client, 'a', 'host-a1')
    _shelve(client, a)
    b = _boot(client, 'b', 'host-b1')
    _shelve(client, b)
    storages = [aio.storage_path(g) for g in ('group-a', 'group-b')]
    before = files_under(*storages)

    # No UUID, no --group, no --yes and no terminal: refused, nothing done.
    monkeypatch.setattr('sys.stdin', io.StringIO('y\n'))
    code, out, err = run(config, 'shelved', 'full-offload')
    assert code == 2
    assert 'EVERY storage group' in err and 'add --yes' in err
    assert out == ''
    assert files_under(*storages) == before
    # A terminal that answers no: nothing done either.
    monkeypatch.setattr('sys.stdin', TTY('n\n'))
    code, out, err = run(config, 'shelved', 'full-offload')
    assert code == 2 and 'not confirmed' in err
    assert files_under(*storages) == before
    for server_id in (a, b):
        assert aio.db.instance_get(server_id).system_metadata.get(
            'shelved_disk')

    # A terminal that answers yes: both groups fully offloaded.
    monkeypatch.setattr('sys.stdin', TTY('yes\n'))
    code, doc = run_json(config, 'shelved', 'full-offload')
    assert code == 0, doc
    assert {r['uuid']: r['action'] for r in doc['instances']} == {
        a: 'offloaded', b: 'offloaded'}
    for server_id in (a, b):
        sysmeta = aio.db.instance_get(server_id).system_metadata
        assert sysmeta.get('shelved_image_id')
        assert not sysmeta.get('shelved_disk')


def test_leftover_shelved_images_audited_and_cleaned(make_aio, client_for,
                                                     tmp_path):
    aio = make_aio(extra={('shelve', 'offload_mode'): 'full'})
    client = client_for(aio.url)
    config = write_config(aio, tmp_path / 'manage.conf')
    kept = _boot(client, 'kept', 'host-a1')
    gone = _boot(client, 'gone', 'host-a1')
    for server_id in (kept, gone):
        client.action(server_id, {'shelve': None})
    deadline = time.monotonic() + 60
    while not all(aio.db.instance_get(s).system_metadata.get(
            'shelved_image_id') and client.server(s)[
            'OS-EXT-STS:task_state'] is None for s in (kept, gone)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    gone_image = aio.db.instance_get(gone).system_metadata[
        'shelved_image_id']
    kept_image = aio.db.instance_get(kept).system_metadata[
        'shelved_image_id']
    # Deleting the instance does not delete its shelved image (as Nova).
    assert client.request('DELETE', '/servers/%s' % gone)[0] == 204
    while client.request('GET', '/servers/%s' % gone)[0] != 404:
        time.sleep(0.05)
    # An image made by hand with a -shelved name but no owner is not ours.
    aio.images.upload('bystander-shelved', aio.images.directory + '/' +
                      kept_image, 'qcow2')
    # Nor is one as Nova's shelve makes it (name and instance_uuid), even
    # naming an instance this project deleted.
    nova_style = aio.images.upload(
        'gone-shelved', aio.images.directory + '/' + kept_image, 'qcow2',
        {'instance_uuid': gone, 'image_type': 'snapshot'})['id']

    code, doc = run_json(config, 'disks', 'audit', '--category',
                         'leftover-image')
    assert code == 3
    assert [f['resource'] for f in doc['findings']] == [gone_image]
    code, doc = run_json(config, 'disks', 'cleanup', '--category',
                         'leftover-image', '--yes')
    assert code == 0
    assert [r['action'] for r in doc['results']] == ['deleted']
    assert doc['bytes_reclaimed'] > 0
    ids = {i['id'] for i in aio.images.list()}
    assert gone_image not in ids and kept_image in ids
    assert nova_style in ids
    code, _doc = run_json(config, 'disks', 'audit', '--category',
                          'leftover-image')
    assert code == 0
