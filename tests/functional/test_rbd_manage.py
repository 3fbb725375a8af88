"""``lifecycle-manage disks audit | cleanup`` on a Ceph storage group: the
pool of a real single-node cluster, an all-in-one on libvirt's test driver
(its guests never read the disks; the clones are real)."""

import time
import uuid

import pytest

from lifecycle.conf import CONF
from lifecycle.conf import rbd as rbd_conf
from lifecycle.storage import qemu_img
from lifecycle.storage import rbd as rbd_storage
from tests.functional.manage.helpers import run
from tests.functional.manage.helpers import run_json
from tests.functional.manage.helpers import write_config

POOL = 'lifecycle-manage'
RBD_CATEGORIES = ('orphan-clone', 'unused-rbd-base',
                  'idle-protected-snapshot')


@pytest.fixture(scope='module')
def pool(ceph_cluster):
    return ceph_cluster.create_pool(POOL)


@pytest.fixture
def aio(make_aio, ceph_cluster, pool):
    rbd_conf.register_section(CONF, 'ceph')
    return make_aio(extra={
        ('aio', 'hosts'): ['host-c1:ceph', 'host-f1:files'],
        ('rbd', 'storage_groups'): ['ceph'],
        ('rbd:ceph', 'ceph_conf'): ceph_cluster.conf,
        ('rbd:ceph', 'pool'): pool})


@pytest.fixture
def config(aio, ceph_cluster, tmp_path):
    path = write_config(aio, tmp_path / 'manage.conf')
    with open(path, 'a') as f:
        f.write('[rbd]\nstorage_groups = ceph\n[rbd:ceph]\n'
                'ceph_conf = %s\npool = %s\n' % (ceph_cluster.conf, POOL))
    return path


def _rbd_findings(doc):
    return sorted((f['category'], f['resource']) for f in doc['findings']
                  if f['category'] in RBD_CATEGORIES or
                  f.get('group') == 'ceph')


def test_audit_and_cleanup_of_a_ceph_pool(aio, client_for, config,
                                          ceph_cluster):
    client = client_for(aio.url)
    kept = client.boot('kept', host='host-c1')
    client.wait(kept, 'ACTIVE')
    client.action(kept, {'shelve': None})
    client.wait(kept, 'SHELVED_OFFLOADED')
    lost = client.boot('lost', host='host-c1')
    client.wait(lost, 'ACTIVE')
    client.action(lost, {'shelve': None})
    client.wait(lost, 'SHELVED_OFFLOADED')
    backend = rbd_storage.RbdBackend(aio.storage_path('ceph'),
                                     storage_group='ceph')
    # Its retained clone vanishes behind our back.
    ceph_cluster.rbd('rm', '--no-progress', '%s/%s_disk' % (POOL, lost))
    used_base = backend.base_name(client.default_image)

    # Planted for real: a clone no instance owns (of the base in use),
    # a base nothing was cloned from, a protected snapshot without clones.
    stray = str(uuid.uuid4())
    backend.create_root_disk(stray, client.default_image, 0)
    qemu_img.write_pattern(backend.qemu_filename(stray + '_disk'), 'raw',
                         0x11, 0, 1024 * 1024)

    def fetch(path):
        qemu_img.create(path, 4 * 1024 * 1024, 'raw')

    unused_base = backend.ensure_base('never-booted', fetch)
    _last_used_hours_ago(ceph_cluster, unused_base, 2)
    # A base as new as this one is kept whatever its children say.
    fresh_base = backend.ensure_base('just-imported', fetch)
    # An import a crash interrupted (ours name them base_<sha1>.part-<hex>).
    partial = unused_base + '.part-0badf00d'
    ceph_cluster.rbd('create', '--size', '4M', '%s/%s' % (POOL, partial))
    _last_used_hours_ago(ceph_cluster, partial, 2)
    ceph_cluster.rbd('create', '--size', '4M', '%s/leftover' % POOL)
    ceph_cluster.rbd('snap', 'create', '%s/leftover@pinned' % POOL)
    ceph_cluster.rbd('snap', 'protect', '%s/leftover@pinned' % POOL)

    code, doc = run_json(config, 'disks', 'audit', '--base-min-age', '1h')
    assert code == 3, doc
    assert doc['errors'] == []
    assert _rbd_findings(doc) == sorted([
        ('orphan-clone', stray),
        ('unused-rbd-base', 'rbd:%s/%s' % (POOL, unused_base)),
        ('unused-rbd-base', 'rbd:%s/%s' % (POOL, partial)),
        ('idle-protected-snapshot', 'rbd:%s/leftover@pinned' % POOL),
        ('missing-disk', lost)])
    orphan = next(f for f in doc['findings']
                  if f['category'] == 'orphan-clone')
    assert orphan['bytes'] > 0 and orphan['path'] == \
        'rbd:%s/%s_disk' % (POOL, stray)

    code, doc = run_json(config, 'disks', 'cleanup', '--base-min-age', '1h',
                         '--yes')
    assert code == 0, doc
    actions = {r['resource']: r['action'] for r in doc['results']}
    assert actions == {
        stray: 'removed',
        'rbd:%s/%s' % (POOL, unused_base): 'removed',
        'rbd:%s/%s' % (POOL, partial): 'removed',
        'rbd:%s/leftover@pinned' % POOL: 'unprotected',
        lost: 'set to error'}
    server = client.server(lost)
    assert server['status'] == 'ERROR'
    assert 'not in pool %s' % POOL in server['fault']['message']
    # The shelved instance's clone and the base it uses are untouched.
    assert ceph_cluster.images(POOL) == sorted(
        [kept + '_disk', used_base, fresh_base, 'leftover'])
    assert ceph_cluster.children('%s/%s@snap' % (POOL, used_base)) == \
        [kept + '_disk']
    snaps = ceph_cluster.rbd('snap', 'ls', '%s/leftover' % POOL)
    assert 'pinned' in snaps

    # Nothing left to find; deleting the last clone frees the base.
    code, doc = run_json(config, 'disks', 'audit', '--base-min-age', '1h')
    assert _rbd_findings(doc) == []
    status, _ = client.request('DELETE', '/servers/%s' % kept)
    assert status == 204
    _wait_gone(client, kept)
    assert kept + '_disk' not in ceph_cluster.images(POOL)
    _last_used_hours_ago(ceph_cluster, used_base, 2)
    code, doc = run_json(config, 'disks', 'audit', '--base-min-age', '1h')
    assert _rbd_findings(doc) == [('unused-rbd-base',
                                   'rbd:%s/%s' % (POOL, used_base))]
    code, out, _err = run(config, 'disks', 'cleanup', '--base-min-age',
                          '0s', '--category', 'unused-rbd-base', '--yes')
    assert code == 0, out
    assert ceph_cluster.images(POOL) == sorted([fresh_base, 'leftover'])


def _last_used_hours_ago(cluster, image, hours):
    # What ensure_base records on import and reuse (as os.utime for the
    # file backends' bases in manage/test_disks.py).
    when = int(time.time()) - hours * 3600
    cluster.rbd('image-meta', 'set', '%s/%s' % (POOL, image),
                rbd_storage.LAST_USED_KEY, str(when))


def _wait_gone(client, server_id, timeout=60):
    deadline = time.monotonic() + timeout
    while client.request('GET', '/servers/%s' % server_id)[0] != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
