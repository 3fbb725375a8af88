"""Partial offload inside a stock Nova: the only part of ``lifecycle`` that
imports Nova.

Importing this package makes the compute driver loadable by Nova's own
loader, which only imports ``nova.virt.<compute_driver>``
(``nova.virt.driver.load_compute_driver``): the module
``nova.virt.partial_offload`` is answered by a finder on ``sys.meta_path``
with :mod:`lifecycle.nova.driver`, so::

    [DEFAULT]
    compute_driver = partial_offload.PartialOffloadLibvirtDriver

works in any Nova process that imported ``lifecycle.nova`` first (the
``lifecycle-nova-compute`` console script does). Importing it also
registers the ``[partial_offload]`` options on ``nova.conf.CONF``. The driver
module itself, and with it Nova's libvirt driver, is imported only when Nova
asks for it.
"""

import importlib
import importlib.abc
import importlib.util
import sys

#: The name Nova's loader imports (``nova.virt.`` + compute_driver's module).
DRIVER_MODULE = 'nova.virt.partial_offload'
#: Where the driver really lives.
_REAL_MODULE = 'lifecycle.nova.driver'


class _DriverAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answer ``nova.virt.partial_offload`` with ``lifecycle.nova.driver``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != DRIVER_MODULE:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(_REAL_MODULE)

    def exec_module(self, module):
        # The real module already ran; it is the same object under both
        # names (so isinstance checks and mocks agree).
        sys.modules[DRIVER_MODULE] = module


def register() -> None:
    """Install the alias and the ``[partial_offload]`` options on Nova's
    configuration (idempotent)."""
    if not any(isinstance(f, _DriverAlias) for f in sys.meta_path):
        sys.meta_path.insert(0, _DriverAlias())
    try:
        from nova import conf as nova_conf
    except ImportError:
        # Not a Nova process (e.g. lifecycle-manage in the service's venv):
        # whatever needs Nova says so when it imports it.
        return

    from lifecycle.nova import conf
    conf.register_opts(nova_conf.CONF)


register()
