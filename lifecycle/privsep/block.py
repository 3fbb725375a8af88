"""Privileged reads of host block devices (the project's own privsep
context)."""

import os
import stat

from lifecycle.privsep import sys_admin_pctxt


@sys_admin_pctxt.entrypoint
def device_size(path: str) -> int:
    """Size in bytes of the block device ``path`` (root-owned, mode 0660
    ``root:disk``: an unprivileged service cannot open it). ValueError for
    anything that is not a block device."""
    mode = os.stat(path).st_mode
    if not stat.S_ISBLK(mode):
        raise ValueError('%s is not a block device' % path)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)
