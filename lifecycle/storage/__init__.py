"""Storage backends: where instance root disks live within a storage group.

Backends are stevedore plugins in the ``lifecycle.storage.backends``
namespace (declared in setup.cfg). Until the package is installed those
entry points do not exist, so the built-in backends are also reachable by
name directly.
"""

import importlib

from oslo_config import cfg
from oslo_log import log as logging
from stevedore import driver
from stevedore import exception as stevedore_exc

from lifecycle import exception
from lifecycle.conf import CONF
from lifecycle.conf import rbd as rbd_conf
from lifecycle.storage.base import DiskInfo
from lifecycle.storage.base import StorageBackend

LOG = logging.getLogger(__name__)

NAMESPACE = 'lifecycle.storage.backends'

_BUILTIN = {
    'qcow2': 'lifecycle.storage.qcow2:Qcow2Backend',
    'flat': 'lifecycle.storage.flat:FlatBackend',
    'rbd': 'lifecycle.storage.rbd:RbdBackend',
}

__all__ = ['DiskInfo', 'StorageBackend', 'backend_name', 'load_backend']


def backend_name(storage_group: str | None,
                 conf: cfg.ConfigOpts | None = None) -> str:
    """The backend of ``storage_group``: ``rbd`` for the groups of ``[rbd]
    storage_groups``, else ``[libvirt] images_type`` (of ``conf``, by
    default the service's configuration)."""
    conf = CONF if conf is None else conf
    if rbd_conf.is_rbd_group(conf, storage_group):
        return 'rbd'
    return conf.libvirt.images_type


def load_backend(name: str, instances_path: str,
                 storage_group: str | None = None,
                 conf: cfg.ConfigOpts | None = None) -> StorageBackend:
    """The storage backend ``name`` for the group storage ``instances_path``
    of ``storage_group`` (which selects per-group settings, e.g. the Ceph
    pool of an ``rbd`` group, read from ``conf``: by default the service's
    configuration).

    Raises InvalidConfiguration for a name that is neither an installed
    entry point nor a built-in backend.
    """
    kwargs: dict = {'storage_group': storage_group}
    if name == 'rbd' and conf is not None:
        kwargs['settings'] = rbd_conf.settings(conf, storage_group)
    try:
        mgr = driver.DriverManager(namespace=NAMESPACE, name=name,
                                   invoke_on_load=True,
                                   invoke_args=(instances_path,),
                                   invoke_kwds=kwargs)
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
    return cls(instances_path, **kwargs)
