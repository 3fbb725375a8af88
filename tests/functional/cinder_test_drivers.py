"""Cinder volume drivers of the test deployment for the broken exports a
working single-node deployment cannot produce (loaded by cinder-volume
from the harness's ``PYTHONPATH``, see cinder_fixture.py; never imported by
the lifecycle service or its tests).

Each is a real Cinder driver with exactly one answer changed, so the rest
(create, attachment bookkeeping, delete) is Cinder's own:

* :class:`NoMonitorRBDDriver` -- Cinder's RBD driver whose monitor lookup
  (``ceph mon dump``) finds no monitor: the ``rbd`` connection names no
  host, as from a cluster whose monitor map cannot be read;
* :class:`UnknownProtocolDriver` -- Cinder's fake driver exporting volumes
  over a protocol no compute host here can attach (``driver_volume_type``
  ``scaleio``, what Cinder's PowerFlex driver answers without its array).
"""

from cinder.tests import fake_driver
from cinder.volume.drivers import rbd

UNKNOWN_PROTOCOL = 'scaleio'


class NoMonitorRBDDriver(rbd.RBDDriver):
    def _get_mon_addrs(self):
        return [], []


class UnknownProtocolDriver(fake_driver.FakeLoggingVolumeDriver):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The fake driver reports itself as backend "fake" whatever its
        # section says; the scheduler matches volume types on this name.
        self.backend_name = self.configuration.safe_get(
            'volume_backend_name')

    def initialize_connection(self, volume, connector):
        return {'driver_volume_type': UNKNOWN_PROTOCOL,
                'data': {'scaleIO_volname': volume.name,
                         'hostIP': '127.0.0.1', 'serverPort': 443}}
