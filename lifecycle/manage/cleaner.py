"""What ``disks cleanup`` does to each finding of an audit."""

import time

from lifecycle import exception
from lifecycle import states
from lifecycle.db import api as db_api
from lifecycle.manage import disks
from lifecycle.manage import findings
from lifecycle.manage import leftover_images
from lifecycle.manage import ownership
from lifecycle.manage import rbd_audit
from lifecycle.storage import paths


#: (action, bytes reclaimed, detail) of one finding's cleanup.
Outcome = tuple[str, int, str]


class Cleaner:
    """Acts on an audit's findings, re-checking each first."""

    def __init__(self, audit: disks.DiskAudit) -> None:
        self.audit = audit
        self.deployment = audit.deployment
        self.db = audit.db
        self._handlers = {
            findings.ORPHAN_DOMAIN: self._orphan_domain,
            findings.ORPHAN_DISK: self._orphan_disk,
            findings.UNUSED_BASE: self._unused_base,
            findings.STALE_METADATA: self._stale_metadata,
            findings.MISSING_DISK: self._missing_disk,
            findings.LEFTOVER_IMAGE: self._leftover_image,
            findings.ORPHAN_MEMORY_STATE: self._orphan_memory_state,
        }

    def apply(self, finding: findings.Finding) -> Outcome:
        """(action, bytes reclaimed, detail) for one finding."""
        if finding.backend == findings.RBD:
            return rbd_audit.cleanup(self, finding)
        return self._handlers[finding.category](finding)

    def _orphan_domain(self, finding: findings.Finding) -> Outcome:
        if self.audit.live_uuids([finding.resource]):
            return 'skipped', 0, 'the instance exists now'
        self.deployment.driver.undefine(finding.resource)
        return 'undefined', 0, 'domain of host %s undefined' % finding.host

    def _orphan_disk(self, finding: findings.Finding) -> Outcome:
        if self.audit.live_uuids([finding.resource]):
            return 'skipped', 0, 'the instance exists now'
        if not (self.audit.deleted_at([finding.resource]) or
                ownership.our_disk_info(finding.path)):
            return 'skipped', 0, "not this project's directory"
        freed = paths.remove_tree(finding.storage.path, finding.path)
        return 'removed', freed, 'instance directory removed'

    def _orphan_memory_state(self, finding: findings.Finding) -> Outcome:
        try:
            instance = self.db.instance_get(finding.resource)
        except exception.InstanceNotFound as e:
            return 'skipped', 0, e.format_message()
        if not self.audit.memory_state_orphaned(instance, finding.path):
            return 'skipped', 0, 'recorded or in use now'
        freed = paths.remove_tree(finding.storage.path, finding.path)
        return 'removed', freed, 'memory state file removed'

    def _unused_base(self, finding: findings.Finding) -> Outcome:
        backend = self.deployment.backend(finding.storage.path)
        freed, detail = backend.remove_base_if_unused(
            finding.path,
            time.time() - self.audit.base_min_age.total_seconds())
        if freed is None:
            return 'skipped', 0, detail
        return 'removed', freed, detail

    def _stale_metadata(self, finding: findings.Finding) -> Outcome:
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

    def _missing_disk(self, finding: findings.Finding) -> Outcome:
        try:
            instance = self.db.instance_get(finding.resource)
            path = self.audit.retained_path(instance, finding.storage)
        except exception.InstanceNotFound as e:
            return 'skipped', 0, e.format_message()
        except (exception.UnsafePath, KeyError):
            path = None
        if path is not None and findings.regular_file(path):
            return 'skipped', 0, 'the disk is there now'
        return self.record_missing_disk(finding)

    def record_missing_disk(self, finding: findings.Finding) -> Outcome:
        """The instance whose retained disk is gone goes to ``error`` with
        a fault saying where the disk was (any storage backend)."""
        message = ('Retained root disk missing: %s (found by '
                   'lifecycle-manage disks cleanup)' % finding.detail)
        fault = db_api.Fault(404, message, details=(
            'location %s in storage group %s' % (
                finding.extra.get('location'), finding.group)))
        try:
            self.db.instance_update(
                finding.resource, {'vm_state': states.ERROR},
                expected_vm_state=[states.SHELVED_OFFLOADED],
                expected_task_state=None, action='cleanup', fault=fault)
        except (exception.InstanceInvalidState,
                exception.InstanceNotFound) as e:
            return 'skipped', 0, e.format_message()
        return 'set to error', 0, 'vm_state error, fault recorded'

    def _leftover_image(self, finding: findings.Finding) -> Outcome:
        try:
            image = self.audit.images.get(finding.resource)
        except exception.ImageNotFound:
            return 'skipped', 0, 'already gone'
        why = leftover_images.why_leftover(self.db, image)
        if why is None:
            return 'skipped', 0, 'an instance needs it now'
        self.audit.images.delete(finding.resource)
        return 'deleted', finding.bytes, why
