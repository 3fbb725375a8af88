"""What ``disks cleanup`` does to each finding of an audit."""

import time

from lifecycle import exception
from lifecycle import states
from lifecycle.manage import disks
from lifecycle.manage import images as images_mod
from lifecycle.manage import rbd_audit
from lifecycle.storage import paths


class Cleaner:
    """Acts on an audit's findings, re-checking each first."""

    def __init__(self, audit: disks.DiskAudit) -> None:
        self.audit = audit
        self.deployment = audit.deployment
        self.db = audit.db

    def apply(self, finding: disks.Finding) -> tuple[str, int, str]:
        """(action, bytes reclaimed, detail) for one finding."""
        if (finding.category in rbd_audit.CATEGORIES or
                finding.extra.get('_rbd')):
            return rbd_audit.cleanup(self, finding)
        handler = getattr(self, '_' + finding.category.replace('-', '_'))
        return handler(finding)

    def _orphan_domain(self, finding: disks.Finding) -> tuple[str, int, str]:
        if self.audit._live_uuids([finding.resource]):
            return 'skipped', 0, 'the instance exists now'
        self.deployment.driver.undefine(finding.resource)
        return 'undefined', 0, 'domain of host %s undefined' % finding.host

    def _orphan_disk(self, finding: disks.Finding) -> tuple[str, int, str]:
        if self.audit._live_uuids([finding.resource]):
            return 'skipped', 0, 'the instance exists now'
        freed = paths.remove_tree(finding.storage.path, finding.path)
        return 'removed', freed, 'instance directory removed'

    def _unused_base(self, finding: disks.Finding) -> tuple[str, int, str]:
        backend = self.deployment.backend(finding.storage.path)
        base = finding.path
        oldest = time.time() - self.audit.base_min_age.total_seconds()
        # The lock creating a disk from this base takes: no disk can be
        # created from it while we look and remove.
        with backend._base_lock(base):
            if base not in backend.list_bases():
                return 'skipped', 0, 'already gone'
            if disks._mtime(base) > oldest:
                return 'skipped', 0, 'used again since the audit'
            if base in backend.referenced_bases():
                return 'skipped', 0, 'a disk uses it now'
            freed = paths.remove_tree(finding.storage.path, base)
        return 'removed', freed, 'base image removed'

    def _stale_metadata(self, finding: disks.Finding) -> tuple[str, int, str]:
        try:
            self.db.instance_update(
                finding.resource, {},
                expected_vm_state=[finding.extra['vm_state']],
                expected_task_state=None, action='cleanup',
                system_metadata=dict.fromkeys(finding.extra['keys']))
        except (exception.InstanceInvalidState,
                exception.InstanceNotFound) as e:
            return 'skipped', 0, e.format_message()
        return 'keys deleted', 0, ', '.join(finding.extra['keys'])

    def _missing_disk(self, finding: disks.Finding) -> tuple[str, int, str]:
        try:
            instance = self.db.instance_get(finding.resource)
            path = self.audit._retained_path(instance, finding.storage)
        except exception.InstanceNotFound as e:
            return 'skipped', 0, e.format_message()
        except (exception.UnsafePath, KeyError):
            path = None
        if path is not None and disks._regular_file(path):
            return 'skipped', 0, 'the disk is there now'
        message = ('Retained root disk missing: %s (found by '
                   'lifecycle-manage disks cleanup)' % finding.detail)
        try:
            self.db.instance_update(
                finding.resource, {'vm_state': states.ERROR},
                expected_vm_state=[states.SHELVED_OFFLOADED],
                expected_task_state=None, action='cleanup')
        except (exception.InstanceInvalidState,
                exception.InstanceNotFound) as e:
            return 'skipped', 0, e.format_message()
        self.db.instance_fault_create(
            finding.resource, 404, message,
            details='location %s in storage group %s' % (
                finding.extra.get('location'), finding.group))
        return 'set to error', 0, 'vm_state error, fault recorded'

    def _leftover_image(self, finding: disks.Finding
                        ) -> tuple[str, int, str]:
        try:
            image = self.audit.images.get(finding.resource)
        except exception.ImageNotFound:
            return 'skipped', 0, 'already gone'
        why = images_mod.why_leftover(self.db, image)
        if why is None:
            return 'skipped', 0, 'an instance needs it now'
        self.audit.images.delete(finding.resource)
        return 'deleted', finding.bytes, why
