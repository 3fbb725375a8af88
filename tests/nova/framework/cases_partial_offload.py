"""Partial offload through a stock Nova 34: API, conductor, scheduler,
placement, compute manager and the real libvirt image code (qcow2 and flat
files in a shared instances_path), fakelibvirt for the hypervisor."""

import os
import time
import uuid

import fixtures

from nova import objects
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional.api import client

from lifecycle import names
from tests.nova.framework import base


class PartialOffloadQcow2Test(base.RealImagesTestBase):

    images_type = 'qcow2'

    def setUp(self):
        super().setUp()
        self.start_group_compute('a1', 'group-a')
        self.start_group_compute('a2', 'group-a')
        self.start_group_compute('b1', 'group-b')
        self.start_compute('x1')  # no storage group: stock Nova
        self.make_group('group-a', ['a1', 'a2'])
        self.make_group('group-b', ['b1'])

    def _boot_on(self, host, name='srv'):
        return self._create_server(name=name, host=host, networks='none')

    def test_shelve_keeps_disk_unshelve_elsewhere_in_group(self):
        server = self._boot_on('a1')
        disk = self.disk_path(server)
        self.assertTrue(os.path.exists(disk))
        inode = os.stat(disk).st_ino
        base_file = self.base_path(server['image']['id'])
        backing = self.backing_file(disk)
        self.assertEqual(base_file, backing)
        base_digest = base.file_digest(base_file)
        downloads = len(self.downloads)

        server = self._shelve_server(server)
        self.assertTrue(os.path.exists(disk))
        self.assertEqual(inode, os.stat(disk).st_ino)
        self.assertEqual({}, self.uploaded)
        self.assertEqual([], self.shelved_images(server))
        sysmeta = self.sysmeta(server)
        self.assertEqual('group-a', sysmeta[names.SHELVED_STORAGE_GROUP])
        self.assertEqual('%s/disk' % server['id'],
                         sysmeta[names.SHELVED_DISK])
        self.assertEqual('a1', sysmeta[names.SHELVED_HOST])
        self.assertNotIn(names.SHELVED_IMAGE_ID, sysmeta)

        self.host_down('a1')
        server = self._unshelve_server(server)
        self.assertEqual('a2', self.server_host(server))
        self.assertEqual(inode, os.stat(disk).st_ino)
        self.assertEqual(downloads, len(self.downloads))
        self.assertEqual(base_digest, base.file_digest(base_file))
        self.assertEqual(base_file, self.backing_file(disk))
        sysmeta = self.sysmeta(server)
        for key in names.SHELVED_KEYS:
            self.assertNotIn(key, sysmeta)

    def test_unshelve_prefers_original_host(self):
        server = self._boot_on('a1')
        server = self._shelve_server(server)
        server = self._unshelve_server(server)
        self.assertEqual('a1', self.server_host(server))

    def test_group_down_stays_offloaded_with_disk(self):
        # Booted without any hint: only the retained disk's metadata keeps
        # the unshelve in group-a, while b1 and x1 are up and have room.
        server = self._boot_on('a1')
        disk = self.disk_path(server)
        inode = os.stat(disk).st_ino
        server = self._shelve_server(server)
        self.host_down('a1')
        self.host_down('a2')
        self.api.post_server_action(server['id'], {'unshelve': None})
        self._wait_for_instance_action_event(
            server, 'unshelve', 'schedule_instances', 'Error')
        server = self._wait_for_state_change(server, 'SHELVED_OFFLOADED')
        self.assertIsNone(self.server_host(server))
        self.assertEqual(inode, os.stat(disk).st_ino)
        self.assertEqual('group-a',
                         self.sysmeta(server)[names.SHELVED_STORAGE_GROUP])

    def test_host_without_group_is_stock(self):
        server = self._boot_on('x1')
        disk = self.disk_path(server)
        server = self._shelve_server(server)
        self.assertFalse(os.path.exists(disk))
        sysmeta = self.sysmeta(server)
        self.assertNotIn(names.SHELVED_DISK, sysmeta)
        image_id = sysmeta[names.SHELVED_IMAGE_ID]
        self.assertGreater(self.uploaded[image_id], 0)
        self.assertEqual(1, len(self.shelved_images(server)))

    def test_host_that_cannot_see_the_disk_fails_cleanly(self):
        server = self._boot_on('a1')
        server = self._shelve_server(server)
        self.host_down('a1')
        inst_dir = os.path.dirname(self.disk_path(server))
        hidden = inst_dir + '.hidden'
        os.rename(inst_dir, hidden)  # a2 no longer sees it
        downloads = len(self.downloads)
        # CAST_AS_CALL: the compute's exception reaches the API client (a
        # real deployment casts and the API answers 202).
        self.assertRaises(client.OpenStackApiException,
                          self.api.post_server_action, server['id'],
                          {'unshelve': None})
        self._wait_for_instance_action_event(
            server, 'unshelve', 'compute_unshelve_instance', 'Error')
        server = self._wait_for_state_change(server, 'SHELVED_OFFLOADED')
        # Nova's API shows a fault only in ERROR; the instance fault record
        # is there (and lifecycle-manage nova shelved show prints it).
        faults = objects.InstanceFaultList.get_latest_by_instance_uuids(
            self.ctxt, [server['id']])
        self.assertIn('does not see the retained root disk',
                      faults[0].message)
        self.assertFalse(os.path.exists(inst_dir))  # nothing created
        self.assertEqual(downloads, len(self.downloads))
        os.rename(hidden, inst_dir)
        server = self._unshelve_server(server)
        self.assertEqual('a2', self.server_host(server))

    def test_image_cache_keeps_retained_base(self):
        self.flags(remove_unused_base_images=True,
                   remove_unused_original_minimum_age_seconds=0,
                   remove_unused_resized_minimum_age_seconds=0,
                   group='image_cache')
        server = self._boot_on('a1')
        base_file = self.base_path(server['image']['id'])
        server = self._shelve_server(server)
        unused = self.base_path('no-instance-uses-this')
        with open(unused, 'wb') as f:
            f.write(b'x')
        os.utime(unused, (0, 0))
        self.computes['a2'].manager._run_image_cache_manager_pass(self.ctxt)
        self.assertFalse(os.path.exists(unused))  # the pass did run
        self.assertTrue(os.path.exists(base_file))
        self.host_down('a1')
        server = self._unshelve_server(server)
        self.assertEqual(base_file, self.backing_file(self.disk_path(server)))

    def test_delete_while_offloaded_disk_removed(self):
        live = self._boot_on('a2', name='live')
        live_dir = os.path.dirname(self.disk_path(live))
        # A marker planted in a live instance's directory: never removed.
        self.computes['a2'].driver.files.write_marker(
            live['id'], 'group-a', 'a2', '%s/disk' % live['id'])
        # Another group's retained disk on the same storage, of a server
        # this cell does not know (it may live in another cell): not this
        # group's to judge.
        other = str(uuid.uuid4())
        os.makedirs(os.path.join(self.instances_path, other))
        with open(os.path.join(self.instances_path, other, 'disk'),
                  'wb') as f:
            f.write(b'other')
        self.computes['a2'].driver.files.write_marker(
            other, 'group-z', 'z1', '%s/disk' % other)
        server = self._boot_on('a1')
        inst_dir = os.path.dirname(self.disk_path(server))
        server = self._shelve_server(server)
        self.assertTrue(os.path.exists(inst_dir))
        self._delete_server(server)  # Nova's API: no compute is called
        self.assertTrue(os.path.exists(inst_dir))
        self.computes['a2'].manager._run_image_cache_manager_pass(self.ctxt)
        self.assertFalse(os.path.exists(inst_dir))
        self.assertTrue(os.path.exists(live_dir))
        self.assertTrue(os.path.exists(self.disk_path(live)))
        self.assertTrue(os.path.exists(os.path.join(self.instances_path,
                                                    other, 'disk')))

    def test_escalation_then_stock_unshelve(self):
        server = self._boot_on('a1')
        inst_dir = os.path.dirname(self.disk_path(server))
        server = self._shelve_server(server)
        self.flags(retained_disk_max_age=1, group='partial_offload')
        time.sleep(1.2)
        self.computes['a2'].manager._run_image_cache_manager_pass(self.ctxt)
        sysmeta = self.sysmeta(server)
        image_id = sysmeta[names.SHELVED_IMAGE_ID]
        self.assertGreater(self.uploaded[image_id], 0)
        self.assertNotIn(names.SHELVED_DISK, sysmeta)
        self.assertNotIn(names.SHELVED_STORAGE_GROUP, sysmeta)
        self.assertFalse(os.path.exists(inst_dir))
        self.host_down('a1')
        self.host_down('a2')
        downloads = len(self.downloads)
        server = self._unshelve_server(server)
        self.assertIn(self.server_host(server), ('b1', 'x1'))
        self.assertEqual([image_id], self.downloads[downloads:])
        self.assertNotIn(image_id, self.glance.images)  # stock cleanup

    def test_escalation_by_storage_watermark(self):
        # The group's storage is the file system holding the shared
        # instances_path (statvfs, as df counts it). It is not ours to fill:
        # the marks are set around the usage measured now.
        server = self._boot_on('a1')
        inst_dir = os.path.dirname(self.disk_path(server))
        server = self._shelve_server(server)
        used, capacity = self.computes['a2'].driver.store.usage()
        percent = 100.0 * used / capacity
        self.assertTrue(3 <= percent <= 97, 'usage %.1f%%' % percent)
        # Below the high mark: nothing happens.
        self.flags(storage_high_watermark=int(percent) + 2,
                   group='partial_offload')
        self.computes['a2'].manager._run_image_cache_manager_pass(self.ctxt)
        self.assertIn(names.SHELVED_DISK, self.sysmeta(server))
        self.assertTrue(os.path.exists(inst_dir))
        self.assertEqual({}, self.uploaded)
        # Above it: escalated (removing one small disk cannot bring the
        # usage down to the low mark, so every retained disk would go).
        self.flags(storage_high_watermark=int(percent) - 2,
                   storage_low_watermark=int(percent) - 2,
                   group='partial_offload')
        self.computes['a2'].manager._run_image_cache_manager_pass(self.ctxt)
        sysmeta = self.sysmeta(server)
        image_id = sysmeta[names.SHELVED_IMAGE_ID]
        self.assertGreater(self.uploaded[image_id], 0)
        self.assertNotIn(names.SHELVED_DISK, sysmeta)
        self.assertFalse(os.path.exists(inst_dir))
        server = self._unshelve_server(server)
        self.assertEqual('ACTIVE', server['status'])

    def test_shelve_without_offload_then_unshelve(self):
        # shelved_offload_time < 0: stays SHELVED (guest defined, resources
        # held); unshelve is Nova's start_instance, our keys go with Nova's.
        self.flags(shelved_offload_time=-1)
        server = self._boot_on('a1')
        disk = self.disk_path(server)
        inode = os.stat(disk).st_ino
        server = self._shelve_server(server, expected_state='SHELVED')
        self.assertEqual({}, self.uploaded)
        self.assertEqual([], self.shelved_images(server))
        self.assertEqual('group-a',
                         self.sysmeta(server)[names.SHELVED_STORAGE_GROUP])
        server = self._unshelve_server(server)
        self.assertEqual('a1', self.server_host(server))
        self.assertEqual(inode, os.stat(disk).st_ino)
        sysmeta = self.sysmeta(server)
        for key in names.SHELVED_KEYS:
            self.assertNotIn(key, sysmeta)

    def test_filter_reads_instance_only_for_unshelve(self):
        from filters import retained
        reads = []
        real_read = retained._read

        def counting_read(spec_obj, cell):
            reads.append(spec_obj.instance_uuid)
            return real_read(spec_obj, cell)
        self.useFixture(fixtures.MonkeyPatch(
            'filters.retained._read', counting_read))
        server = self._create_server(name='nohost', networks='none')
        self._create_server(name='second', networks='none')
        self.assertEqual([], reads)  # boots: no database read
        server = self._shelve_server(server)
        server = self._unshelve_server(server)
        self.assertEqual([server['id']], reads)  # once per request

    def test_hint_keeps_working(self):
        body = self._build_server(name='hinted', networks='none')
        server = self.api.post_server({
            'server': body,
            'os:scheduler_hints': {'storage_group': 'group-b'}})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('b1', self.server_host(server))
        server = self._shelve_server(server)
        # b1 is group-b's only host: no other host announced itself in the
        # storage, so the disk is not retained (stock full snapshot) ...
        sysmeta = self.sysmeta(server)
        self.assertNotIn(names.SHELVED_STORAGE_GROUP, sysmeta)
        self.assertGreater(self.uploaded[sysmeta[names.SHELVED_IMAGE_ID]], 0)
        # ... and the boot-time hint still keeps the unshelve in group-b.
        server = self._unshelve_server(server)
        self.assertEqual('b1', self.server_host(server))

class PartialOffloadFlatTest(base.RealImagesTestBase):

    images_type = 'flat'

    def setUp(self):
        super().setUp()
        self.start_group_compute('a1', 'group-a')
        self.start_group_compute('a2', 'group-a')
        self.start_compute('x1')
        self.make_group('group-a', ['a1', 'a2'])

    def test_shelve_keeps_disk_unshelve_elsewhere_in_group(self):
        server = self._create_server(name='flat', host='a1', networks='none')
        disk = self.disk_path(server)
        with open(disk, 'r+b') as f:
            f.seek(4096)
            f.write(b'written by the guest')
        inode = os.stat(disk).st_ino
        digest = base.file_digest(disk)
        downloads = len(self.downloads)
        server = self._shelve_server(server)
        self.assertEqual({}, self.uploaded)
        self.assertEqual([], self.shelved_images(server))
        self.host_down('a1')
        server = self._unshelve_server(server)
        self.assertEqual('a2', self.server_host(server))
        self.assertEqual(inode, os.stat(disk).st_ino)
        self.assertEqual(digest, base.file_digest(disk))
        self.assertEqual(downloads, len(self.downloads))


class PartialOffloadVolumeBackedTest(base.RealImagesTestBase):
    """A volume-backed server on a host of a storage group: Nova's stock
    shelve (no snapshot, nothing retained), through Nova's Cinder and
    os-brick fixtures."""

    def setUp(self):
        super().setUp()
        self.cinder = self.useFixture(nova_fixtures.CinderFixture(self))
        self.useFixture(nova_fixtures.OSBrickFixture())
        self.start_group_compute('a1', 'group-a')
        self.start_group_compute('a2', 'group-a')
        self.make_group('group-a', ['a1', 'a2'])

    def test_volume_backed_is_stock(self):
        body = self._build_server(name='bfv', networks='none', host='a1')
        body.pop('imageRef')
        body['block_device_mapping_v2'] = [{
            'boot_index': 0, 'source_type': 'volume',
            'destination_type': 'volume',
            'uuid': nova_fixtures.CinderFixture.IMAGE_BACKED_VOL}]
        server = self._wait_for_state_change(
            self.api.post_server({'server': body}), 'ACTIVE')
        self.assertEqual('a1', self.server_host(server))
        inst_dir = os.path.join(self.instances_path, server['id'])
        server = self._shelve_server(server)
        sysmeta = self.sysmeta(server)
        for key in (names.SHELVED_DISK, names.SHELVED_STORAGE_GROUP,
                    names.SHELVED_IMAGE_ID):
            self.assertNotIn(key, sysmeta)
        self.assertEqual({}, self.uploaded)
        self.assertFalse(os.path.exists(inst_dir))  # stock destroy
        self.assertIsNone(
            self.computes['a1'].driver.files.read_marker(server['id']))
        self.host_down('a1')
        server = self._unshelve_server(server)
        self.assertEqual('a2', self.server_host(server))
