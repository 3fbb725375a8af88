"""Storage backends: where instance root disks live within a storage group.

Backends are stevedore plugins in the ``lifecycle.storage.backends``
namespace (declared in setup.cfg). Until the package is installed those
entry points do not exist, so the built-in backends are also reachable by
name directly.
"""

import importlib

from oslo_log import log as logging
from stevedore import driver
from stevedore import exception as stevedore_exc

from lifecycle import exception
from lifecycle.storage.base import DiskInfo
from lifecycle.storage.base import StorageBackend

LOG = logging.getLogger(__name__)

NAMESPACE = 'lifecycle.storage.backends'

_BUILTIN = {
    'qcow2': 'lifecycle.storage.qcow2:Qcow2Backend',
    'flat': 'lifecycle.storage.flat:FlatBackend',
}

__all__ = ['DiskInfo', 'StorageBackend', 'load_backend']


def load_backend(name: str, instances_path: str) -> StorageBackend:
    """The storage backend ``name`` for the group storage ``instances_path``.

    Raises InvalidConfiguration for a name that is neither an installed
    entry point nor a built-in backend.
    """
    try:
        mgr = driver.DriverManager(namespace=NAMESPACE, name=name,
                                   invoke_on_load=True,
                                   invoke_args=(instances_path,))
        return mgr.driver
    except stevedore_exc.NoMatches:
        LOG.debug('No %(ns)s entry point named %(name)s; trying built-ins',
                  {'ns': NAMESPACE, 'name': name})
    target = _BUILTIN.get(name)
    if target is None:
        raise exception.InvalidConfiguration(
            reason='unknown storage backend %r (known: %s)'
                   % (name, ', '.join(sorted(_BUILTIN))))
    module_name, class_name = target.split(':')
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(instances_path)
