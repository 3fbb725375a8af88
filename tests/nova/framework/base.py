"""Nova's libvirt functional test base, with real disk images.

``nova.tests.functional.libvirt.base.ServersTestBase`` runs the real
``LibvirtDriver`` (here: ``PartialOffloadLibvirtDriver``) against
fakelibvirt, but stubs out everything that touches disk images. This base
puts Nova's real code back -- ``LibvirtDriver._create_image``, the image
backends (``imagebackend.Backend.backend``), ``libvirt_utils.file_open`` --
runs privsep in-process (``PrivsepFixture``), and replaces only the
download of a base image from Glance (``libvirt_utils.fetch_image``) by a
function that writes a real raw file and counts the call; an image with
uploaded data (a snapshot) goes through Nova's real ``fetch_to_raw``.
Every compute service of a test shares one temporary ``instances_path``,
as the hosts of a storage group share their storage. The fake Glance
keeps uploaded data (and counts it).

The configuration is the operator guide's (doc/source/nova-plugin.rst):
``compute_driver = partial_offload.PartialOffloadLibvirtDriver``,
``[partial_offload] storage_group`` per host, HostAggregateGroupFilter and
the weighers in nova-scheduler, ``shelved_offload_time = 0``.
"""

import hashlib
import os
import subprocess

import fixtures
from nova import context as nova_context
from nova import objects
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional.libvirt import base
from nova.virt import images
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import imagebackend
from nova.virt.libvirt import utils as libvirt_utils

import lifecycle.nova  # noqa: F401 - nova.virt.partial_offload

# The real functions, before ServersTestBase's fixtures patch them.
REAL_CREATE_IMAGE = libvirt_driver.LibvirtDriver._create_image
REAL_BACKEND = imagebackend.Backend.backend
REAL_FILE_OPEN = libvirt_utils.file_open

DRIVER = 'partial_offload.PartialOffloadLibvirtDriver'
FILTERS = ['filters.host_aggregate_group.HostAggregateGroupFilter']
WEIGHERS = ['filters.weighers.OriginalHostWeigher']
#: Size of the fake image the fake download writes (raw, with a pattern).
IMAGE_BYTES = 8 * 1024 * 1024


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


class RealImagesTestBase(base.ServersTestBase):
    """Several computes over one shared instances_path, real image files."""

    microversion = 'latest'
    ADMIN_API = True
    images_type = 'qcow2'

    def setUp(self):
        super().setUp()
        self.useFixture(nova_fixtures.PrivsepFixture())
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.LibvirtDriver._create_image',
            REAL_CREATE_IMAGE))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.imagebackend.Backend.backend', REAL_BACKEND))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.driver.libvirt_utils.file_open',
            REAL_FILE_OPEN))
        self.downloads = []
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.utils.fetch_image', self._fake_fetch))
        self.uploaded = {}
        real_update = self.glance.update

        def update(context, image_id, metadata, data=None,
                   purge_props=False):
            result = real_update(context, image_id, metadata, data=None,
                                 purge_props=purge_props)
            if data is not None:
                payload = data.read()
                self.glance._imagedata[image_id] = payload
                self.uploaded[image_id] = len(payload)
            return result
        # The fake Glance drops uploaded data; keep it (and its size).
        self.glance.update = update
        self.flags(images_type=self.images_type, group='libvirt')
        self.flags(shelved_offload_time=0)
        self.instances_path = self.flags_value('instances_path')
        self.ctxt = nova_context.get_admin_context()

    def flags_value(self, name, group=None):
        conf = base.CONF
        return getattr(conf[group], name) if group else getattr(conf, name)

    def _setup_compute_service(self):
        self.flags(compute_driver=DRIVER)

    def _setup_scheduler_service(self):
        conf = base.CONF
        self.flags(available_filters=list(
            conf.filter_scheduler.available_filters) + FILTERS,
            group='filter_scheduler')
        self.flags(enabled_filters=list(
            conf.filter_scheduler.enabled_filters) +
            ['HostAggregateGroupFilter'], group='filter_scheduler')
        self.flags(weight_classes=[
            'nova.scheduler.weights.all_weighers'] + WEIGHERS,
            group='filter_scheduler')
        return self.start_service('scheduler')

    def _fake_fetch(self, context, target, image_id, trusted_certs=None):
        self.downloads.append(image_id)
        if self.glance._imagedata.get(image_id):
            # Uploaded data (a stock shelve's or an escalation's snapshot):
            # Nova's real download and conversion to raw, from the fake
            # Glance's bytes.
            return images.fetch_to_raw(context, image_id, target,
                                       trusted_certs)
        with open(target, 'wb') as f:
            f.truncate(IMAGE_BYTES)
            f.seek(0)
            f.write(hashlib.sha256(image_id.encode()).digest() * 1024)

    # --- helpers ----------------------------------------------------------

    def start_group_compute(self, hostname, group):
        self.flags(storage_group=group, group='partial_offload')
        try:
            return self.start_compute(hostname)
        finally:
            self.flags(storage_group=None, group='partial_offload')

    def make_group(self, group, hosts):
        agg_id = self._create_aggregate('agg-%s' % group)
        for host in hosts:
            self.admin_api.add_host_to_aggregate(agg_id, host)
        self.admin_api.post_aggregate_action(
            agg_id, {'set_metadata': {'metadata': {'storage_group': group}}})
        return agg_id

    def host_down(self, hostname):
        self.computes[hostname].stop()
        service = self.admin_api.get_services(
            host=hostname, binary='nova-compute')[0]
        self.admin_api.put_service_force_down(service['id'], True)

    def disk_path(self, server):
        return os.path.join(self.instances_path, server['id'], 'disk')

    def base_path(self, image_id):
        return os.path.join(self.instances_path, '_base',
                            hashlib.sha1(image_id.encode()).hexdigest())

    def sysmeta(self, server):
        inst = objects.Instance.get_by_uuid(
            self.ctxt, server['id'], expected_attrs=['system_metadata'])
        return dict(inst.system_metadata)

    def server_host(self, server):
        return self.api.get_server(server['id'])['OS-EXT-SRV-ATTR:host']

    def shelved_images(self, server):
        return [img for img in self.glance.images.values()
                if img.get('name') == '%s-shelved' % server['name']]

    @staticmethod
    def backing_file(path):
        out = subprocess.run(
            ['qemu-img', 'info', '-U', '--output=json', path],
            capture_output=True, text=True, check=True).stdout
        import json
        return json.loads(out).get('backing-filename')
