"""Nova's ``Rbd`` image backend through the plugin, on a real Ceph cluster
(the project's single-node fixture; its ceph.conf, pools and base image
come from the environment, set by tests/nova/test_rbd.py).

Hosts: a1 and a2 in storage group ``group-a``, b1 in no group (stock
Nova); all use the same pool, as the hosts of a Ceph-backed group do.
"""

import io
import json
import os
import subprocess
import time

from nova import conf as nova_conf
from nova.image import glance
from nova.storage import rbd_utils

from lifecycle.manage import PROBLEMS_FOUND, SUCCESS
from lifecycle import names
from lifecycle.nova import manage
from lifecycle.nova import rbd_store
from tests.nova.framework import base

CEPH_CONF = os.environ.get('LIFECYCLE_TEST_CEPH_CONF')
POOL = os.environ.get('LIFECYCLE_TEST_CEPH_POOL')
#: A pool with a quota (max_bytes = WATERMARK_QUOTA), for the watermarks.
WATERMARK_POOL = os.environ.get('LIFECYCLE_TEST_CEPH_WATERMARK_POOL')
WATERMARK_QUOTA = int(os.environ.get('LIFECYCLE_TEST_CEPH_WATERMARK_QUOTA',
                                     '0'))
FSID = os.environ.get('LIFECYCLE_TEST_CEPH_FSID')
BASE = os.environ.get('LIFECYCLE_TEST_CEPH_BASE')  # image@snap, protected

MiB = 1024 * 1024
PATTERN = b'retained by shelve-lifecycle\n' * 1000


def rbd_info(image, pool=None):
    return json.loads(subprocess.run(
        ['rbd', '--conf', CEPH_CONF, 'info', '--format', 'json',
         '%s/%s' % (pool or POOL, image)],
        capture_output=True, text=True, check=True).stdout)


def rbd_images(pool=None):
    return json.loads(subprocess.run(
        ['rbd', '--conf', CEPH_CONF, 'ls', '--format', 'json',
         pool or POOL], capture_output=True, text=True, check=True).stdout)


def rbd_write(name, data, offset, pool=None):
    driver = rbd_utils.RBDDriver(pool=pool or POOL)
    with rbd_utils.RBDVolumeProxy(driver, name) as vol:
        vol.write(data, offset)


def rbd_read(name, offset, length, pool=None):
    driver = rbd_utils.RBDDriver(pool=pool or POOL)
    with rbd_utils.RBDVolumeProxy(driver, name, read_only=True) as vol:
        return vol.read(offset, length)


class RbdPartialOffloadTest(base.RealImagesTestBase):

    images_type = 'rbd'

    def setUp(self):
        super().setUp()
        self.flags(images_rbd_pool=POOL, images_rbd_ceph_conf=CEPH_CONF,
                   group='libvirt')
        self.start_group_compute('a1', 'group-a')
        self.start_group_compute('a2', 'group-a')
        self.start_compute('b1')  # no storage group: stock Nova
        self.make_group('group-a', ['a1', 'a2'])
        image, snap = BASE.split('@')
        self.image_id = 'c0ffee00-0000-4000-8000-00000000cafe'
        self.glance.create(None, {
            'id': self.image_id, 'name': 'rbd-base', 'status': 'active',
            'disk_format': 'raw', 'container_format': 'bare',
            'size': 8 * MiB, 'min_disk': 0, 'min_ram': 0,
            'properties': {},
            'locations': [{'url': 'rbd://%s/%s/%s/%s' % (
                FSID, POOL, image, snap), 'metadata': {}}]})
        # Each case has a Nova database of its own but the pools are shared:
        # what a case leaves (marked clones of servers the next database
        # never heard of) would be the next case's orphans.
        before = {pool: set(rbd_images(pool))
                  for pool in (POOL, WATERMARK_POOL)}
        self.addCleanup(self._remove_new_images, before)

    @staticmethod
    def _remove_new_images(before):
        for pool, existing in before.items():
            for name in sorted(set(rbd_images(pool)) - existing):
                subprocess.run(['rbd', '--conf', CEPH_CONF, 'rm',
                                '--no-progress', '%s/%s' % (pool, name)],
                               capture_output=True, check=True)

    def _boot(self, host, name='rbd'):
        return self._create_server(name=name, host=host, networks='none',
                                   image_uuid=self.image_id)

    def _pass(self, host='a2'):
        self.computes[host].manager._run_image_cache_manager_pass(self.ctxt)

    def marker(self, server, pool=None):
        return rbd_store.RbdStore(pool=pool or POOL).read_marker(
            server['id'])

    def manage(self, *argv):
        args = manage._parser().parse_args(list(argv) + ['--format', 'json'])
        out = io.StringIO()
        code = manage.run(args, nova_conf.CONF, self.ctxt,
                          image_api=glance.API(), stream=out)
        text = out.getvalue()
        return code, (json.loads(text) if text.strip() else None)

    def test_unshelve_elsewhere_keeps_the_clone(self):
        server = self._boot('a1')
        disk = '%s_disk' % server['id']
        info = rbd_info(disk)
        parent = info['parent']
        self.assertEqual(BASE, '%s@%s' % (parent['image'],
                                          parent['snapshot']))
        downloads = len(self.downloads)

        server = self._shelve_server(server)
        self.assertEqual({}, self.uploaded)
        self.assertEqual('rbd:%s/%s' % (POOL, disk),
                         self.sysmeta(server)[names.SHELVED_DISK])
        self.assertEqual(info['id'], rbd_info(disk)['id'])
        self.assertEqual('group-a', self.marker(server)['storage_group'])

        self.host_down('a1')
        server = self._unshelve_server(server)
        self.assertEqual('a2', self.server_host(server))
        after = rbd_info(disk)
        self.assertEqual(info['id'], after['id'])  # the same clone
        self.assertEqual(parent, after['parent'])  # never flattened
        self.assertEqual(downloads, len(self.downloads))
        self.assertIsNone(self.marker(server))

    def test_delete_while_offloaded_removes_the_clone(self):
        live = self._boot('a2', name='live')
        live_disk = '%s_disk' % live['id']
        # A marker planted on a live instance's clone: never removed.
        rbd_store.RbdStore().write_marker(
            live['id'], 'group-a', 'a2', 'rbd:%s/%s' % (POOL, live_disk))
        server = self._boot('a1')
        disk = '%s_disk' % server['id']
        server = self._shelve_server(server)
        self._delete_server(server)  # Nova's API: no compute is called
        self.assertIn(disk, rbd_images())
        self._pass('a2')
        self.assertEqual([], [n for n in rbd_images()
                              if n.startswith(server['id'])])
        self.assertIn(live_disk, rbd_images())
        self.assertEqual('ACTIVE', self.api.get_server(live['id'])['status'])

    def test_disks_audit_and_cleanup(self):
        self.flags(cleanup_deleted=False, group='partial_offload')
        live = self._boot('a2', name='live')
        rbd_store.RbdStore().write_marker(
            live['id'], 'group-a', 'a2', 'rbd:%s/%s_disk' % (POOL,
                                                             live['id']))
        kept = self._shelve_server(self._boot('a1', name='kept'))
        gone = self._shelve_server(self._boot('a1', name='gone'))
        self._delete_server(gone)
        self._pass('a2')  # cleanup_deleted off: left to the command
        self.assertIn('%s_disk' % gone['id'], rbd_images())

        code, found = self.manage('disks', 'audit')
        self.assertEqual(PROBLEMS_FOUND, code)
        self.assertEqual([('deleted-server-disk', gone['id'],
                           'rbd:%s/%s_*' % (POOL, gone['id']))],
                         [(f['kind'], f['id'], f['path']) for f in found])
        code, found = self.manage('disks', 'cleanup', '--dry-run')
        self.assertIn('%s_disk' % gone['id'], rbd_images())
        code, found = self.manage('disks', 'cleanup', '--yes')
        self.assertEqual(SUCCESS, code)
        self.assertEqual(['removed'], [f['action'] for f in found])
        left = rbd_images()
        self.assertNotIn('%s_disk' % gone['id'], left)
        self.assertIn('%s_disk' % kept['id'], left)
        self.assertIn('%s_disk' % live['id'], left)
        self.assertEqual((SUCCESS, []), self.manage('disks', 'audit'))
        code, rows = self.manage('shelved', 'list')
        self.assertEqual([kept['id']], [r['uuid'] for r in rows])

    def test_escalation_by_age_then_stock_unshelve(self):
        self.flags(snapshot_image_format='qcow2', group='libvirt')
        server = self._boot('a1')
        disk = '%s_disk' % server['id']
        rbd_write(disk, PATTERN, 3 * MiB)  # what the guest wrote
        server = self._shelve_server(server)
        self.flags(retained_disk_max_age=1, group='partial_offload')
        time.sleep(1.2)
        self._pass('a2')
        sysmeta = self.sysmeta(server)
        image_id = sysmeta[names.SHELVED_IMAGE_ID]
        self.assertGreater(self.uploaded[image_id], 0)
        self.assertEqual('qcow2', self.glance.images[image_id]['disk_format'])
        self.assertNotIn(names.SHELVED_DISK, sysmeta)
        self.assertNotIn(names.SHELVED_STORAGE_GROUP, sysmeta)
        self.assertNotIn(disk, rbd_images())  # removed only once recorded

        # Nova's stock unshelve, on a host of no group. Nova's Glance API
        # always answers "locations" (an empty list here) when asked for
        # them (nova.image.glance.GlanceImageServiceV2.show); the fake
        # Glance leaves the key out, which Rbd.clone would trip on.
        self.glance.images[image_id].setdefault('locations', [])
        self.host_down('a1')
        self.host_down('a2')
        downloads = len(self.downloads)
        server = self._unshelve_server(server)
        self.assertEqual('b1', self.server_host(server))
        self.assertEqual([image_id], self.downloads[downloads:])
        self.assertNotIn('parent', rbd_info(disk))  # imported, not a clone
        self.assertEqual(PATTERN, rbd_read(disk, 3 * MiB, len(PATTERN)))
        self.assertNotIn(image_id, self.glance.images)  # stock cleanup

    def test_escalation_by_pool_watermark(self):
        self.flags(images_rbd_pool=WATERMARK_POOL, group='libvirt')
        self.flags(snapshot_image_format='qcow2', group='libvirt')
        old = self._boot('a1', name='old')
        new = self._boot('a1', name='new')
        rbd_write('%s_disk' % old['id'], b'o' * 40 * MiB, 0,
                  pool=WATERMARK_POOL)
        rbd_write('%s_disk' % new['id'], b'n' * 4 * MiB, 0,
                  pool=WATERMARK_POOL)
        old = self._shelve_server(old)
        time.sleep(0.01)  # shelved_at orders them
        new = self._shelve_server(new)
        used, capacity = rbd_store.RbdStore().usage()
        self.assertEqual(WATERMARK_QUOTA, capacity)  # the pool's quota
        self.assertGreaterEqual(used, 44 * MiB)  # 68 %
        # Above 50 %: the oldest goes; without it the pool is at 6 %, below
        # the low mark, so the other stays.
        self.flags(storage_high_watermark=50, storage_low_watermark=30,
                   group='partial_offload')
        self._pass('a2')
        old_meta, new_meta = self.sysmeta(old), self.sysmeta(new)
        self.assertIn(names.SHELVED_IMAGE_ID, old_meta)
        self.assertNotIn(names.SHELVED_DISK, old_meta)
        self.assertNotIn(names.SHELVED_IMAGE_ID, new_meta)
        self.assertIn(names.SHELVED_DISK, new_meta)
        left = rbd_images(WATERMARK_POOL)
        self.assertNotIn('%s_disk' % old['id'], left)
        self.assertIn('%s_disk' % new['id'], left)
        used, _capacity = rbd_store.RbdStore().usage()
        self.assertLess(used, 0.3 * capacity)
