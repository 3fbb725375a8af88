"""``lifecycle-manage disks audit | cleanup``: find and reclaim leftovers.

``audit`` changes nothing. It lists, by category:

``orphan-disk``
    an instance directory (``<group storage>/<uuid>/``) for which the
    database has no live instance (never existed, or soft-deleted);
``missing-disk``
    a ``shelved_offloaded`` instance whose retained disk
    (``shelved_disk``) is not a regular file inside its group's storage;
``unused-base``
    a base image in ``_base/`` that no disk of a live instance uses (qcow2
    backing chains are read from the headers) and that was not placed or
    reused for ``--base-min-age``;
``stale-metadata``
    ``shelved_*`` system metadata on an instance that is not shelved (vm
    state other than ``shelved``, ``shelved_offloaded`` or ``error``);
``orphan-domain``
    a libvirt domain carrying this project's metadata for a host of the
    scope whose instance the database does not know (no live instance);
``orphan-memory-state``
    a hibernate-shelve's ``memory.save`` in the directory of a live
    instance that records no saved state (and runs no task).

Storage groups kept in a Ceph RBD pool are checked by
:mod:`lifecycle.manage.rbd_audit` instead (``orphan-clone``,
``unused-rbd-base``, ``idle-protected-snapshot``).

and, audit-only, ``unreachable-storage``: a storage group's directory (or
its ``_base``) is missing while the database records retained disks in it
(storage not mounted?); that group's disks are then not checked, so an
unmounted share never makes every retained disk look missing.

and ``leftover-image``: an image a full offload of this project made
(property ``lifecycle_shelved_instance``,
:mod:`lifecycle.manage.leftover_images`; Nova's own ``-shelved`` images are
never matched) that no instance needs.

Instances with a task in progress are left out of every check.

Before anything else, each file-based storage root is checked for data the
project does not own (:mod:`lifecycle.manage.ownership`: Nova's instance
directories, bases and files in a shared ``instances_path``). When there is
some and ``orphan-disk`` or ``unused-base`` is asked for, the command
refuses (exit code 4, nothing read further, nothing changed) unless
``--allow-foreign-storage``; with it, directories not ours are never
reported nor removed and unused bases are not looked for in such a root
(Nova's image cache names bases as we do).

The audit only reads: it creates no directory (not even the image
directory), changes no mode, takes no lock file.

``cleanup`` runs the audit and then, per category, re-checks each finding
right before acting on it: orphan domains are undefined, orphan disk
directories and unused bases are removed (inside the managed directory
only, symlinks unlinked and never followed: ``lifecycle.storage.paths``),
stale metadata keys are deleted, and instances whose retained disk is
missing are put in ``error`` with a fault saying where the disk was (their
``shelved_*`` keys are kept: a delete uses them to find the storage group).
"""

import datetime
import os
import time

import sqlalchemy as sa
from oslo_log import log as logging

from lifecycle import exception
from lifecycle import states
from lifecycle.compute import hibernate
from lifecycle.db import models
from lifecycle.manage import ForeignStorage
from lifecycle.manage import image_source
from lifecycle.manage import leftover_images
from lifecycle.manage import locate
from lifecycle.manage import output
from lifecycle.manage.findings import Finding
from lifecycle.manage.findings import LEFTOVER_IMAGE
from lifecycle.manage.findings import MISSING_DISK
from lifecycle.manage.findings import ORPHAN_DISK
from lifecycle.manage.findings import ORPHAN_DOMAIN
from lifecycle.manage.findings import ORPHAN_MEMORY_STATE
from lifecycle.manage.findings import STALE_METADATA
from lifecycle.manage.findings import UNREACHABLE_STORAGE
from lifecycle.manage.findings import UNUSED_BASE
from lifecycle.manage import ownership
from lifecycle.manage import findings as findings_mod
from lifecycle.manage import rbd_audit
from lifecycle.storage import base as storage_base
from lifecycle.storage import paths
from lifecycle import names

LOG = logging.getLogger(__name__)

SHELVED_PREFIX = 'shelved_'
# vm_states in which shelved_* keys belong: shelved keeps shelved_at and
# shelved_host (and the rest while an offload is retried), error keeps what
# a delete needs to find the storage group.
_SHELVED_KEYS_ALLOWED = (states.SHELVED, states.SHELVED_OFFLOADED,
                         states.ERROR)
DEFAULT_BASE_MIN_AGE = datetime.timedelta(hours=1)
def _chunks(items: list, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class DiskAudit:
    """One audit of a deployment's scope; the findings stay with it for a
    cleanup."""

    def __init__(self, deployment: locate.Deployment,
                 categories: tuple[str, ...],
                 base_min_age: datetime.timedelta,
                 allow_foreign: bool = False) -> None:
        self.deployment = deployment
        self.db = deployment.db
        self.categories = categories
        self.base_min_age = base_min_age
        self.allow_foreign = allow_foreign
        self.findings: list[Finding] = []
        self.errors: list[str] = []
        # Storage roots holding data not ours (allowed): what was left out.
        self.foreign: dict[str, ownership.Report] = {}
        self.notes: list[str] = []
        self._images = None

    def wanted(self, category: str) -> bool:
        return category in self.categories

    def in_pool(self, storage: locate.Storage) -> bool:
        """Whether the group's disks are in a Ceph pool (checked by
        :mod:`lifecycle.manage.rbd_audit`)."""
        return self.deployment.backend_name(storage.group) == 'rbd'

    # -- database views -----------------------------------------------------

    def live_uuids(self, uuids: list[str]) -> set[str]:
        inst = models.Instance
        found: set[str] = set()
        with self.db.session() as session:
            for chunk in _chunks(sorted(uuids)):
                found.update(session.scalars(
                    sa.select(inst.uuid).where(
                        inst.uuid.in_(chunk), inst.deleted_at.is_(None))))
        return found

    def deleted_at(self, uuids: list[str]) -> dict[str, datetime.datetime]:
        inst = models.Instance
        found: dict = {}
        with self.db.session() as session:
            for chunk in _chunks(sorted(uuids)):
                found.update(session.execute(
                    sa.select(inst.uuid, inst.deleted_at).where(
                        inst.uuid.in_(chunk),
                        inst.deleted_at.is_not(None))).all())
        return found

    def _in_scope(self, instance: models.Instance) -> bool:
        """All-in-one: every instance; compute host: this host's."""
        if self.deployment.mode == locate.AIO:
            return True
        hosts = self.deployment.hosts
        return (instance.host in hosts or (
            instance.host is None and
            instance.system_metadata.get(names.SHELVED_HOST) in hosts))

    @staticmethod
    def retained_in(instance: models.Instance,
                     storage: locate.Storage) -> bool:
        sysmeta = instance.system_metadata
        if not sysmeta.get(names.SHELVED_DISK):
            return False
        group = sysmeta.get(names.SHELVED_STORAGE_GROUP) or None
        if storage.group is not None:
            return group == storage.group
        return (group is None and
                sysmeta.get(names.SHELVED_HOST) in storage.hosts)

    # -- the audit ----------------------------------------------------------

    def _check_ownership(self, storages) -> None:
        """ForeignStorage when a root holds data not ours and a category
        that removes files is asked for (unless allowed)."""
        if not (self.wanted(ORPHAN_DISK) or self.wanted(UNUSED_BASE)):
            return
        refused = []
        for storage in storages:
            if self.in_pool(storage):
                continue
            report = ownership.inspect(self.db, storage.path)
            if not report.foreign:
                continue
            if not self.allow_foreign:
                refused.append(report.describe())
                continue
            self.foreign[storage.path] = report
            self.notes.append(
                'NOT OURS, left alone (--allow-foreign-storage): %s; unused '
                'bases not looked for there' % report.describe())
        if refused:
            raise ForeignStorage(
                'refusing to audit or clean up storage that holds data this '
                'project does not own (is [DEFAULT] instances_path shared '
                'with Nova? give each its own directory): %s. Nothing was '
                'changed. --allow-foreign-storage runs the checks anyway, '
                'leaving what is not ours alone and not looking for unused '
                'bases there.' % ' | '.join(refused))

    def run(self, progress_label: str = 'audit') -> list[Finding]:
        storages = self.deployment.storages
        self._check_ownership(storages)
        # Look at storage and hypervisor before reading the instances, so
        # that anything created meanwhile has its row in what is read.
        listings = {s: paths.instance_names(s.path) for s in storages}
        domains = self._list_domains() if self.wanted(ORPHAN_DOMAIN) else {}
        instances = self.db.instance_get_all()
        steps = len(storages) + 3
        with output.Progress(progress_label, steps) as progress:
            for storage in storages:
                if self.in_pool(storage):
                    rbd_audit.check(self, storage, instances)
                else:
                    self._check_storage(storage, listings[storage],
                                        instances)
                progress.step('storage of group %s' % storage.group)
            if self.wanted(STALE_METADATA):
                self._check_metadata(instances)
            progress.step('system metadata')
            if domains:
                self._check_domains(domains)
            progress.step('libvirt domains')
            if self.wanted(LEFTOVER_IMAGE):
                self._check_images()
            progress.step('shelved images')
        return self.findings

    @property
    def images(self):
        """The image source; None for a local directory that is not there
        (the audit never creates it)."""
        if self._images is None:
            self._images = image_source.image_service(self.deployment.conf)
        return self._images

    def _check_images(self) -> None:
        try:
            leftovers = leftover_images.find(self.db, self.images)
        except exception.LifecycleException as e:
            self.errors.append('image service: %s' % e.format_message())
            return
        for image, why in leftovers:
            self.findings.append(Finding(
                LEFTOVER_IMAGE, image['id'], '%s: %s' % (image['name'], why),
                bytes=image.get('size') or 0))

    def _check_storage(self, storage: locate.Storage,
                       names: list[str],
                       instances: list[models.Instance]) -> None:
        root = storage.path
        retained = [i for i in instances if self.retained_in(i, storage)]
        reachable = os.path.isdir(root) and os.path.isdir(
            os.path.join(root, storage_base.BASE_DIR))
        if retained and not reachable:
            self.findings.append(Finding(
                UNREACHABLE_STORAGE, root, group=storage.group, path=root,
                storage=storage,
                detail='%d retained disk(s) recorded here but %s is '
                       'missing; disks of this group not checked' % (
                           len(retained), root if not os.path.isdir(root)
                           else os.path.join(root, storage_base.BASE_DIR))))
            return
        live = {i.uuid for i in instances}
        report = self.foreign.get(root)
        foreign = {os.path.basename(d) for d in report.foreign_dirs} \
            if report else set()
        orphans = [n for n in names if n not in live and n not in foreign]
        # Rows created after the listing are in ``instances``; a row may
        # have been deleted since: ask again for the candidates only.
        orphans = [n for n in orphans
                   if n not in self.live_uuids(orphans)]
        if self.wanted(ORPHAN_DISK):
            deleted = self.deleted_at(orphans)
            # A directory made after the ownership check is counted only
            # when it is ours as well.
            orphans = [n for n in orphans if n in deleted or
                       ownership.our_disk_info(os.path.join(root, n))]
            for name in orphans:
                inst_dir = os.path.join(root, name)
                when = deleted.get(name)
                self.findings.append(Finding(
                    ORPHAN_DISK, name, group=storage.group, path=inst_dir,
                    storage=storage, bytes=paths.allocated_bytes(inst_dir),
                    detail=('instance deleted at %s' % when.isoformat()
                            if when else 'no such instance')))
        if self.wanted(MISSING_DISK) and reachable:
            for instance in retained:
                self._check_retained(instance, storage)
        if self.wanted(ORPHAN_MEMORY_STATE):
            by_uuid = {i.uuid: i for i in instances}
            for name in names:
                if name in by_uuid and name not in foreign:
                    self._check_memory_state(by_uuid[name], storage)
        if self.wanted(UNUSED_BASE) and reachable and report is None:
            self._check_bases(storage, [n for n in names if n in live])

    def retained_path(self, instance: models.Instance,
                       storage: locate.Storage) -> str:
        """The retained disk's path; UnsafePath if outside the storage."""
        return paths.confine(storage.path,
                             instance.system_metadata[names.SHELVED_DISK])

    def _check_retained(self, instance: models.Instance,
                        storage: locate.Storage) -> None:
        if (instance.vm_state != states.SHELVED_OFFLOADED or
                instance.task_state is not None):
            return
        location = instance.system_metadata[names.SHELVED_DISK]
        try:
            path = self.retained_path(instance, storage)
        except exception.UnsafePath:
            path, detail = None, ('recorded location %r is outside %s'
                                  % (location, storage.path))
        else:
            if findings_mod.regular_file(path):
                return
            detail = ('not a regular file' if os.path.lexists(path)
                      else 'missing')
        self.findings.append(Finding(
            MISSING_DISK, instance.uuid, group=storage.group,
            host=instance.system_metadata.get(names.SHELVED_HOST), path=path,
            storage=storage, detail=detail,
            extra={'display_name': instance.display_name,
                   'location': location}))

    def memory_state_path(self, instance_uuid: str,
                          storage: locate.Storage) -> str:
        return paths.confine(storage.path, os.path.join(
            storage.path, instance_uuid, hibernate.MEMORY_STATE_NAME))

    def memory_state_orphaned(self, instance: models.Instance,
                              path: str) -> bool:
        """A saved state no hibernate-shelve records (left by a crash, or
        by a revert that could not delete it); an instance with a task in
        progress may be writing or reading its own."""
        return (instance.task_state is None and
                not hibernate.recorded(instance) and
                findings_mod.regular_file(path))

    def _check_memory_state(self, instance: models.Instance,
                            storage: locate.Storage) -> None:
        path = self.memory_state_path(instance.uuid, storage)
        if not self.memory_state_orphaned(instance, path):
            return
        self.findings.append(Finding(
            ORPHAN_MEMORY_STATE, instance.uuid, group=storage.group,
            path=path, storage=storage, bytes=paths.allocated_bytes(path),
            detail='saved memory state of a %s instance that records none'
                   % instance.vm_state))

    def _check_bases(self, storage: locate.Storage,
                     live_names: list[str]) -> None:
        backend = self.deployment.backend(storage.path)
        used = backend.referenced_bases(live_names)
        oldest = time.time() - self.base_min_age.total_seconds()
        for base in backend.list_bases():
            if base in used or findings_mod.mtime(base) > oldest:
                continue
            self.findings.append(Finding(
                UNUSED_BASE, base, group=storage.group, path=base,
                storage=storage, bytes=paths.allocated_bytes(base),
                detail='no disk of a live instance uses it; last used %s' %
                datetime.datetime.fromtimestamp(
                    findings_mod.mtime(base), datetime.UTC).strftime(
                        '%Y-%m-%dT%H:%M:%SZ')))

    def _check_metadata(self, instances: list[models.Instance]) -> None:
        for instance in instances:
            if (instance.vm_state in _SHELVED_KEYS_ALLOWED or
                    instance.task_state is not None or
                    not self._in_scope(instance)):
                continue
            keys = sorted(k for k in instance.system_metadata
                          if k.startswith(SHELVED_PREFIX))
            if keys:
                self.findings.append(Finding(
                    STALE_METADATA, instance.uuid, host=instance.host,
                    detail='%s on an instance in vm_state %s' % (
                        ', '.join(keys), instance.vm_state),
                    extra={'keys': keys, 'vm_state': instance.vm_state,
                           'display_name': instance.display_name}))

    def _list_domains(self) -> dict[str, list[str]]:
        try:
            driver = self.deployment.driver
            return {host: driver.list_instance_uuids(host)
                    for host in self.deployment.hosts}
        except exception.LifecycleException as e:
            self.errors.append('libvirt domains not checked: %s'
                               % e.format_message())
            return {}

    def _check_domains(self, domains: dict[str, list[str]]) -> None:
        every = sorted({u for uuids in domains.values() for u in uuids})
        live = self.live_uuids(every)
        for host, uuids in sorted(domains.items()):
            for uuid in uuids:
                if uuid not in live:
                    self.findings.append(Finding(
                        ORPHAN_DOMAIN, uuid, host=host,
                        detail='domain on %s, no live instance'
                               % self.deployment.driver.uri))
