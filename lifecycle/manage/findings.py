"""What ``disks audit`` reports: the categories of findings, in cleanup
order, and the finding itself. A leaf module: the audits
(:mod:`lifecycle.manage.disks` for the file-based storage and what every
deployment has, :mod:`lifecycle.manage.rbd_audit` for Ceph pools) and the
cleanup (:mod:`lifecycle.manage.cleaner`) all import it, not each other's
names."""

import dataclasses
import os
import stat

from lifecycle.manage import locate
from lifecycle.manage import output

ORPHAN_DOMAIN = 'orphan-domain'
ORPHAN_DISK = 'orphan-disk'
ORPHAN_MEMORY_STATE = 'orphan-memory-state'
ORPHAN_CLONE = 'orphan-clone'
UNUSED_BASE = 'unused-base'
UNUSED_RBD_BASE = 'unused-rbd-base'
IDLE_PROTECTED_SNAPSHOT = 'idle-protected-snapshot'
STALE_METADATA = 'stale-metadata'
MISSING_DISK = 'missing-disk'
LEFTOVER_IMAGE = 'leftover-image'
UNREACHABLE_STORAGE = 'unreachable-storage'

# Cleanup order: a domain goes before the disk it may use, disks before
# the bases they use.
CATEGORIES = (ORPHAN_DOMAIN, ORPHAN_DISK, ORPHAN_CLONE, UNUSED_BASE,
              UNUSED_RBD_BASE, IDLE_PROTECTED_SNAPSHOT, STALE_METADATA,
              MISSING_DISK, LEFTOVER_IMAGE, ORPHAN_MEMORY_STATE)
AUDIT_ONLY = (UNREACHABLE_STORAGE,)
RBD_CATEGORIES = (ORPHAN_CLONE, UNUSED_RBD_BASE, IDLE_PROTECTED_SNAPSHOT)

# What cleanup would do (shown by --dry-run and without --yes).
PLANNED = {ORPHAN_DOMAIN: 'would undefine', ORPHAN_DISK: 'would remove',
           ORPHAN_CLONE: 'would remove', UNUSED_BASE: 'would remove',
           UNUSED_RBD_BASE: 'would remove',
           IDLE_PROTECTED_SNAPSHOT: 'would unprotect',
           STALE_METADATA: 'would delete keys',
           MISSING_DISK: 'would set error',
           LEFTOVER_IMAGE: 'would delete image',
           ORPHAN_MEMORY_STATE: 'would remove'}

#: ``Finding.backend`` of the findings in a Ceph pool.
RBD = 'rbd'


@dataclasses.dataclass
class Finding:
    category: str
    resource: str              # instance uuid or file path
    detail: str
    bytes: int = 0
    group: str | None = None
    host: str | None = None
    path: str | None = None
    storage: locate.Storage | None = dataclasses.field(
        default=None, repr=False)
    extra: dict = dataclasses.field(default_factory=dict, repr=False)
    #: The storage audit that made it and cleans it up (None: files, or
    #: nothing stored: domains, metadata, images).
    backend: str | None = dataclasses.field(default=None, repr=False)

    @property
    def where(self) -> str:
        if self.path and self.path != self.resource:
            return self.path
        if self.host:
            return 'host %s' % self.host
        if self.group:
            return 'group %s' % self.group
        return '-'

    def to_dict(self) -> dict:
        return {'category': self.category, 'resource': self.resource,
                'detail': self.detail, 'bytes': self.bytes,
                'group': self.group, 'host': self.host, 'path': self.path,
                **{k: v for k, v in self.extra.items()
                   if not k.startswith('_')}}

    def row(self) -> dict:
        return dict(self.to_dict(), where=self.where,
                    bytes_human=output.human_bytes(self.bytes))


def regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def mtime(path: str) -> float:
    """Last modification; infinitely recent when the file is gone."""
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return float('inf')
