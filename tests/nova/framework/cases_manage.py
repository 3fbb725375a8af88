"""``lifecycle-manage nova``: shelved list/show and disks audit/cleanup,
against the Nova of the functional framework (its databases, its fake
Glance, the real shared instances_path)."""

import io
import json
import os

from nova import conf as nova_conf
from nova.image import glance

from lifecycle.manage import PROBLEMS_FOUND, SUCCESS, USAGE
from lifecycle.nova import manage
from tests.nova.framework import base


class ManageTest(base.RealImagesTestBase):

    def setUp(self):
        super().setUp()
        self.start_group_compute('a1', 'group-a')
        self.start_group_compute('a2', 'group-a')
        self.start_compute('x1')
        self.make_group('group-a', ['a1', 'a2'])

    def manage(self, *argv):
        args = manage._parser().parse_args(list(argv) + ['--format', 'json'])
        out = io.StringIO()
        code = manage.run(args, nova_conf.CONF, self.ctxt,
                          image_api=glance.API(), stream=out)
        text = out.getvalue()
        return code, (json.loads(text) if text.strip() else None)

    def test_shelved_list_shows_why_unshelve_failed(self):
        server = self._create_server(name='why', host='a1', networks='none')
        server = self._shelve_server(server)
        self.host_down('a1')
        self.host_down('a2')
        self.api.post_server_action(server['id'], {'unshelve': None})
        self._wait_for_instance_action_event(
            server, 'unshelve', 'schedule_instances', 'Error')
        code, rows = self.manage('shelved', 'list')
        self.assertEqual(SUCCESS, code)
        [row] = rows
        self.assertEqual(server['id'], row['uuid'])
        self.assertEqual('group-a', row['storage_group'])
        self.assertEqual('a1', row['shelved_host'])
        self.assertGreater(row['disk_bytes'], 0)
        self.assertIn('schedule_instances', row['last_unshelve_failure'])
        self.assertIn('No valid host', row['last_unshelve_failure'])
        code, rows = self.manage('shelved', 'list', '--group', 'group-b')
        self.assertEqual([], rows)
        code, doc = self.manage('shelved', 'show', server['id'])
        self.assertEqual(SUCCESS, code)
        self.assertEqual('shelved_offloaded', doc['vm_state'])
        self.assertIn('schedule_instances',
                      [e['event'] for e in doc['unshelve_events']])

    def test_group_full_stays_offloaded_and_manage_shows_why(self):
        # Placement sees 128 GB of DISK_GB on each fake host: one server of
        # this flavor fills it (fakelibvirt's RAM is counted in MB as kB,
        # far too much to fill). x1, outside the group, keeps room.
        flavor = self._create_flavor(memory_mb=512, vcpu=1, disk=100,
                                     ephemeral=0)
        for host in ('a1', 'a2'):
            inventory = self.placement.get(
                '/resource_providers/%s/inventories' %
                self.compute_rp_uuids[host]).body['inventories']['DISK_GB']
            self.assertEqual((128, 1.0), (inventory['total'],
                                          inventory['allocation_ratio']))
        server = self._create_server(name='big', host='a1', networks='none',
                                     flavor_id=flavor)
        disk = self.disk_path(server)
        inode = os.stat(disk).st_ino
        server = self._shelve_server(server)
        fillers = [self._create_server(name='fill-%s' % host, host=host,
                                       networks='none', flavor_id=flavor)
                   for host in ('a1', 'a2')]
        self.api.post_server_action(server['id'], {'unshelve': None})
        self._wait_for_instance_action_event(
            server, 'unshelve', 'schedule_instances', 'Error')
        server = self._wait_for_state_change(server, 'SHELVED_OFFLOADED')
        self.assertIsNone(self.server_host(server))
        self.assertEqual(inode, os.stat(disk).st_ino)
        code, rows = self.manage('shelved', 'list')
        self.assertEqual(SUCCESS, code)
        [row] = rows
        self.assertEqual(server['id'], row['uuid'])
        self.assertEqual('group-a', row['storage_group'])
        self.assertIn('No valid host', row['last_unshelve_failure'])
        # Room again in the group: the unshelve runs the same disk there.
        self._delete_server(fillers[0])
        server = self._unshelve_server(server)
        self.assertEqual('a1', self.server_host(server))
        self.assertEqual(inode, os.stat(disk).st_ino)

    def test_disks_audit_and_cleanup(self):
        live = self._create_server(name='live', host='a2', networks='none')
        # A live instance's directory with a planted marker: never touched.
        self.computes['a2'].driver.files.write_marker(
            live['id'], 'group-a', 'a2', '%s/disk' % live['id'])
        gone = self._create_server(name='gone', host='a1', networks='none')
        gone_dir = os.path.dirname(self.disk_path(gone))
        self._shelve_server(gone)
        self._delete_server(gone)
        unused = self.base_path('nobody')
        with open(unused, 'wb') as f:
            f.write(b'x' * 4096)
        stale = self.glance.create(self.ctxt, {
            'name': 'old-shelved', 'status': 'active',
            'properties': {'image_type': 'snapshot',
                           'instance_uuid': gone['id']}})

        code, found = self.manage('disks', 'audit')
        self.assertEqual(PROBLEMS_FOUND, code)
        kinds = {(f['kind'], f['id']) for f in found}
        self.assertEqual({('deleted-server-disk', gone['id']),
                          ('unused-base', os.path.basename(unused)),
                          ('stale-shelved-image', stale['id'])}, kinds)

        code, _ = self.manage('disks', 'cleanup')
        self.assertEqual(USAGE, code)
        code, found = self.manage('disks', 'cleanup', '--dry-run')
        self.assertEqual(SUCCESS, code)
        self.assertTrue(os.path.exists(gone_dir))
        self.assertTrue(os.path.exists(unused))
        self.assertIn(stale['id'], self.glance.images)

        code, found = self.manage('disks', 'cleanup', '--yes')
        self.assertEqual(SUCCESS, code)
        self.assertEqual({'removed'}, {f['action'] for f in found})
        self.assertFalse(os.path.exists(gone_dir))
        self.assertFalse(os.path.exists(unused))
        self.assertNotIn(stale['id'], self.glance.images)
        self.assertTrue(os.path.exists(self.disk_path(live)))
        self.assertTrue(os.path.exists(self.base_path(live['image']['id'])))
        code, found = self.manage('disks', 'audit')
        self.assertEqual((SUCCESS, []), (code, found))
