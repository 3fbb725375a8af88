"""Nova's own shelve/unshelve functional tests, with ``compute_driver =
partial_offload.PartialOffloadLibvirtDriver`` (and no storage group: the
plugin must then behave exactly as Nova's LibvirtDriver)."""

from nova.tests.functional.libvirt import test_pci_sriov_servers
from nova.tests.functional.libvirt import test_stateless_firmware
from nova.tests.functional.libvirt import test_vtpm

import lifecycle.nova  # noqa: F401 - nova.virt.partial_offload
from tests.nova.framework.base import DRIVER


class _PluginDriver:
    def _setup_compute_service(self):
        self.flags(compute_driver=DRIVER)

    def test_plugin_driver_loaded(self):
        from lifecycle.nova import driver
        hostname = self.start_compute('plugin-check')
        self.assertIsInstance(self.computes[hostname].driver,
                              driver.PartialOffloadLibvirtDriver)


class StatelessFirmwareWithPlugin(
        _PluginDriver, test_stateless_firmware.LibvirtStatelessFirmwareTest):
    pass


class VTPMWithPlugin(_PluginDriver, test_vtpm.VTPMServersTest):
    pass


class VDPAWithPlugin(_PluginDriver, test_pci_sriov_servers.VDPAServersTest):
    pass


class PCIWithPlugin(_PluginDriver, test_pci_sriov_servers.PCIServersTest):
    pass
