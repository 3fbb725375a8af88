"""Privilege separation of the compute service (oslo.privsep), as Nova's
``nova.privsep``.

Two privsep contexts run privileged code for this service, each in a
daemon of its own started on first use:

* :data:`sys_admin_pctxt` (``[lifecycle_sys_admin]``), this project's own,
  for its own few privileged steps (:mod:`lifecycle.privsep.block`);
* os-brick's ``os_brick.privileged.default`` (``[privsep_osbrick]``), which
  runs os-brick's commands (``iscsiadm``, reading
  ``/etc/iscsi/initiatorname.iscsi``, scanning SCSI hosts) when the volume
  code connects a block device.

The daemon is started with the ``helper_command`` of the context's section.
:func:`init` gives both sections a default: this installation's
``privsep-helper`` (next to the running interpreter) with the service's
config files, prefixed by ``sudo`` unless the service already runs as
root -- no rootwrap, the way Nova runs with ``[workarounds]
disable_rootwrap``. An operator's ``helper_command`` wins. Unprivileged
services need a sudoers entry for exactly that command.
"""

import os
import shlex
import shutil
import sys
import threading

from oslo_config import cfg
from oslo_privsep import capabilities
from oslo_privsep import priv_context

from lifecycle.conf import volume as volume_conf

SYS_ADMIN_SECTION = volume_conf.PRIVSEP_SECTIONS[0]
OS_BRICK_SECTION = volume_conf.PRIVSEP_SECTIONS[1]

sys_admin_pctxt = priv_context.PrivContext(
    'lifecycle',
    cfg_section=SYS_ADMIN_SECTION,
    pypath=__name__ + '.sys_admin_pctxt',
    capabilities=[capabilities.CAP_DAC_OVERRIDE,
                  capabilities.CAP_DAC_READ_SEARCH,
                  capabilities.CAP_SYS_ADMIN],
)

_init_lock = threading.Lock()
_initialised = False


def helper_binary() -> str:
    """``privsep-helper`` of the installation this interpreter runs."""
    local = os.path.join(os.path.dirname(sys.executable), 'privsep-helper')
    if os.access(local, os.X_OK):
        return local
    return shutil.which('privsep-helper') or 'privsep-helper'


def root_helper() -> list[str]:
    """What runs a command as root: nothing for a root service, else
    ``sudo`` (no rootwrap)."""
    return [] if os.geteuid() == 0 else ['sudo']


def helper_command(conf: cfg.ConfigOpts = cfg.CONF) -> str:
    """The default ``helper_command`` of both contexts (the context and
    socket arguments are appended by oslo.privsep)."""
    cmd = root_helper() + [helper_binary()]
    for option, flag in (('config_file', '--config-file'),
                         ('config_dir', '--config-dir')):
        try:
            values = getattr(conf, option) or ()
        except cfg.NoSuchOptError:
            values = ()  # a ConfigOpts that never parsed a command line
        for value in ([values] if isinstance(values, str) else values):
            cmd += [flag, value]
    return shlex.join(cmd)


def init(conf: cfg.ConfigOpts = cfg.CONF) -> None:
    """Give the privsep contexts their helper command, once per process
    and before the first privileged call. oslo.privsep reads its options
    from the global ``cfg.CONF``."""
    global _initialised
    with _init_lock:
        if _initialised:
            return
        import os_brick
        import os_brick.privileged  # registers its section

        # os-brick's host-wide locks (one connect or disconnect per target
        # at a time): [os_brick] lock_path, else [oslo_concurrency]'s, else
        # a directory under the instances path.
        os_brick.setup(cfg.CONF)
        if not cfg.CONF.os_brick.lock_path:
            cfg.CONF.set_default(
                'lock_path', os.path.join(cfg.CONF.instances_path, 'locks',
                                          'os-brick'), group='os_brick')
        command = helper_command(conf)
        for section in (SYS_ADMIN_SECTION, OS_BRICK_SECTION):
            cfg.CONF.set_default('helper_command', command, group=section)
        priv_context.init(root_helper=root_helper() or None)
        _initialised = True

