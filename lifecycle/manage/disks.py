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
    scope whose instance the database does not know (no live instance).

Storage groups kept in a Ceph RBD pool are checked by
:mod:`lifecycle.manage.rbd_audit` instead (``orphan-clone``,
``unused-rbd-base``, ``idle-protected-snapshot``).

and, audit-only, ``unreachable-storage``: a storage group's directory (or
its ``_base``) is missing while the database records retained disks in it
(storage not mounted?); that group's disks are then not checked, so an
unmounted share never makes every retained disk look missing.

Instances with a task in progress are left out of every check. Leftover
``-shelved`` images in the image service are not audited yet.

``cleanup`` runs the audit and then, per category, re-checks each finding
right before acting on it: orphan domains are undefined, orphan disk
directories and unused bases are removed (inside the managed directory
only, symlinks unlinked and never followed: ``lifecycle.storage.paths``),
stale metadata keys are deleted, and instances whose retained disk is
missing are put in ``error`` with a fault saying where the disk was (their
``shelved_*`` keys are kept: a delete uses them to find the storage group).
"""

import dataclasses
import datetime
import os
import stat
import time

import sqlalchemy as sa
from oslo_log import log as logging

from lifecycle import exception
from lifecycle import states
from lifecycle.db import models
from lifecycle.manage import FAILED
from lifecycle.manage import PROBLEMS_FOUND
from lifecycle.manage import SUCCESS
from lifecycle.manage import UsageError
from lifecycle.manage import deployment as deployment_mod
from lifecycle.manage import images as images_mod
from lifecycle.manage import output
from lifecycle.manage import rbd_audit
from lifecycle.storage import base as storage_base
from lifecycle.storage import images
from lifecycle.storage import paths

LOG = logging.getLogger(__name__)

ORPHAN_DOMAIN = 'orphan-domain'
ORPHAN_DISK = 'orphan-disk'
UNUSED_BASE = 'unused-base'
STALE_METADATA = 'stale-metadata'
MISSING_DISK = 'missing-disk'
LEFTOVER_IMAGE = images_mod.LEFTOVER_IMAGE
UNREACHABLE_STORAGE = 'unreachable-storage'

# Cleanup order: a domain goes before the disk it may use, disks before
# the bases they use.
CATEGORIES = (ORPHAN_DOMAIN, ORPHAN_DISK, rbd_audit.ORPHAN_CLONE,
              UNUSED_BASE, rbd_audit.UNUSED_RBD_BASE,
              rbd_audit.IDLE_PROTECTED_SNAPSHOT, STALE_METADATA,
              MISSING_DISK, LEFTOVER_IMAGE)
AUDIT_ONLY = (UNREACHABLE_STORAGE,)

SHELVED_PREFIX = 'shelved_'
# vm_states in which shelved_* keys belong: shelved keeps shelved_at and
# shelved_host (and the rest while an offload is retried), error keeps what
# a delete needs to find the storage group.
_SHELVED_KEYS_ALLOWED = (states.SHELVED, states.SHELVED_OFFLOADED,
                         states.ERROR)
DEFAULT_BASE_MIN_AGE = datetime.timedelta(hours=1)
# What cleanup would do (shown by --dry-run and without --yes).
PLANNED = {ORPHAN_DOMAIN: 'would undefine', ORPHAN_DISK: 'would remove',
           UNUSED_BASE: 'would remove', STALE_METADATA: 'would delete keys',
           MISSING_DISK: 'would set error',
           LEFTOVER_IMAGE: 'would delete image', **rbd_audit.PLANNED}

COLUMNS = (('category', 'Category'), ('resource', 'Resource'),
           ('where', 'Where'), ('bytes_human', 'Size'),
           ('detail', 'Detail'))
RESULT_COLUMNS = (('category', 'Category'), ('resource', 'Resource'),
                  ('action', 'Action'), ('bytes_human', 'Reclaimed'),
                  ('detail', 'Detail'))


@dataclasses.dataclass
class Finding:
    category: str
    resource: str              # instance uuid or file path
    detail: str
    bytes: int = 0
    group: str | None = None
    host: str | None = None
    path: str | None = None
    storage: deployment_mod.Storage | None = dataclasses.field(
        default=None, repr=False)
    extra: dict = dataclasses.field(default_factory=dict, repr=False)

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


def _regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _is_dir(path: str) -> bool:
    return os.path.isdir(path)


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return float('inf')


def _chunks(items: list, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class DiskAudit:
    """One audit of a deployment's scope; the findings stay with it for a
    cleanup."""

    def __init__(self, deployment: deployment_mod.Deployment,
                 categories: tuple[str, ...],
                 base_min_age: datetime.timedelta) -> None:
        self.deployment = deployment
        self.db = deployment.db
        self.categories = categories
        self.base_min_age = base_min_age
        self.findings: list[Finding] = []
        self.errors: list[str] = []
        self._images = None

    def _wanted(self, category: str) -> bool:
        return category in self.categories

    # -- database views -----------------------------------------------------

    def _live_uuids(self, uuids: list[str]) -> set[str]:
        inst = models.Instance
        found: set[str] = set()
        with self.db.session() as session:
            for chunk in _chunks(sorted(uuids)):
                found.update(session.scalars(
                    sa.select(inst.uuid).where(
                        inst.uuid.in_(chunk), inst.deleted_at.is_(None))))
        return found

    def _deleted_at(self, uuids: list[str]) -> dict[str, datetime.datetime]:
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
        if self.deployment.mode == deployment_mod.AIO:
            return True
        hosts = self.deployment.hosts
        return (instance.host in hosts or (
            instance.host is None and
            instance.system_metadata.get('shelved_host') in hosts))

    @staticmethod
    def _retained_in(instance: models.Instance,
                     storage: deployment_mod.Storage) -> bool:
        sysmeta = instance.system_metadata
        if not sysmeta.get('shelved_disk'):
            return False
        group = sysmeta.get('shelved_storage_group') or None
        if storage.group is not None:
            return group == storage.group
        return group is None and sysmeta.get('shelved_host') in storage.hosts

    # -- the audit ----------------------------------------------------------

    def run(self, progress_label: str = 'audit') -> list[Finding]:
        storages = self.deployment.storages
        # Look at storage and hypervisor before reading the instances, so
        # that anything created meanwhile has its row in what is read.
        listings = {s: paths.instance_names(s.path) for s in storages}
        domains = self._list_domains() if self._wanted(ORPHAN_DOMAIN) else {}
        instances = self.db.instance_get_all()
        steps = len(storages) + 3
        with output.Progress(progress_label, steps) as progress:
            for storage in storages:
                if rbd_audit.is_rbd(self.deployment, storage):
                    rbd_audit.check(self, storage, instances)
                else:
                    self._check_storage(storage, listings[storage],
                                        instances)
                progress.step('storage of group %s' % storage.group)
            if self._wanted(STALE_METADATA):
                self._check_metadata(instances)
            progress.step('system metadata')
            if domains:
                self._check_domains(domains)
            progress.step('libvirt domains')
            if self._wanted(LEFTOVER_IMAGE):
                self._check_images()
            progress.step('shelved images')
        return self.findings

    @property
    def images(self):
        if self._images is None:
            self._images = images_mod.image_service(self.deployment.conf)
        return self._images

    def _check_images(self) -> None:
        try:
            leftovers = images_mod.find(self.db, self.images)
        except exception.LifecycleException as e:
            self.errors.append('image service: %s' % e.format_message())
            return
        for image, why in leftovers:
            self.findings.append(Finding(
                LEFTOVER_IMAGE, image['id'], '%s: %s' % (image['name'], why),
                bytes=image.get('size') or 0))

    def _check_storage(self, storage: deployment_mod.Storage,
                       names: list[str],
                       instances: list[models.Instance]) -> None:
        root = storage.path
        retained = [i for i in instances if self._retained_in(i, storage)]
        reachable = _is_dir(root) and _is_dir(
            os.path.join(root, storage_base.BASE_DIR))
        if retained and not reachable:
            self.findings.append(Finding(
                UNREACHABLE_STORAGE, root, group=storage.group, path=root,
                storage=storage,
                detail='%d retained disk(s) recorded here but %s is '
                       'missing; disks of this group not checked' % (
                           len(retained), root if not _is_dir(root)
                           else os.path.join(root, storage_base.BASE_DIR))))
            return
        live = {i.uuid for i in instances}
        orphans = [n for n in names if n not in live]
        # Rows created after the listing are in ``instances``; a row may
        # have been deleted since: ask again for the candidates only.
        orphans = [n for n in orphans
                   if n not in self._live_uuids(orphans)]
        if self._wanted(ORPHAN_DISK):
            deleted = self._deleted_at(orphans)
            for name in orphans:
                inst_dir = os.path.join(root, name)
                when = deleted.get(name)
                self.findings.append(Finding(
                    ORPHAN_DISK, name, group=storage.group, path=inst_dir,
                    storage=storage, bytes=paths.allocated_bytes(inst_dir),
                    detail=('instance deleted at %s' % when.isoformat()
                            if when else 'no such instance')))
        if self._wanted(MISSING_DISK) and reachable:
            for instance in retained:
                self._check_retained(instance, storage)
        if self._wanted(UNUSED_BASE) and reachable:
            self._check_bases(storage, [n for n in names if n in live])

    def _retained_path(self, instance: models.Instance,
                       storage: deployment_mod.Storage) -> str:
        """The retained disk's path; UnsafePath if outside the storage."""
        return paths.confine(storage.path,
                             instance.system_metadata['shelved_disk'])

    def _check_retained(self, instance: models.Instance,
                        storage: deployment_mod.Storage) -> None:
        if (instance.vm_state != states.SHELVED_OFFLOADED or
                instance.task_state is not None):
            return
        location = instance.system_metadata['shelved_disk']
        try:
            path = self._retained_path(instance, storage)
        except exception.UnsafePath:
            path, detail = None, ('recorded location %r is outside %s'
                                  % (location, storage.path))
        else:
            if _regular_file(path):
                return
            detail = ('not a regular file' if os.path.lexists(path)
                      else 'missing')
        self.findings.append(Finding(
            MISSING_DISK, instance.uuid, group=storage.group,
            host=instance.system_metadata.get('shelved_host'), path=path,
            storage=storage, detail=detail,
            extra={'display_name': instance.display_name,
                   'location': location}))

    @staticmethod
    def _bases_used(backend, names: list[str]) -> set[str]:
        """Bases used by qcow2 files in the instance directories ``names``
        (as StorageBackend.referenced_bases, for chosen directories)."""
        bases = {os.path.basename(b): b for b in backend.list_bases()}
        real = {os.path.realpath(b): b for b in bases.values()}
        used: set[str] = set()
        for name in names:
            try:
                entries = list(os.scandir(os.path.join(backend.instances_path,
                                                       name)))
            except FileNotFoundError:
                continue
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                for backing in images.backing_chain(entry.path):
                    parent = os.path.basename(os.path.dirname(backing))
                    if (parent == storage_base.BASE_DIR and
                            os.path.basename(backing) in bases):
                        used.add(bases[os.path.basename(backing)])
                    else:
                        used.add(real.get(os.path.realpath(backing),
                                          backing))
        return used

    def _check_bases(self, storage: deployment_mod.Storage,
                     live_names: list[str]) -> None:
        backend = self.deployment.backend(storage.path)
        used = self._bases_used(backend, live_names)
        oldest = time.time() - self.base_min_age.total_seconds()
        for base in backend.list_bases():
            if base in used or _mtime(base) > oldest:
                continue
            self.findings.append(Finding(
                UNUSED_BASE, base, group=storage.group, path=base,
                storage=storage, bytes=paths.allocated_bytes(base),
                detail='no disk of a live instance uses it; last used %s' %
                datetime.datetime.fromtimestamp(
                    _mtime(base), datetime.UTC).strftime(
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
        live = self._live_uuids(every)
        for host, uuids in sorted(domains.items()):
            for uuid in uuids:
                if uuid not in live:
                    self.findings.append(Finding(
                        ORPHAN_DOMAIN, uuid, host=host,
                        detail='domain on %s, no live instance'
                               % self.deployment.driver.uri))


def _summary(findings: list[Finding], key: str = 'bytes') -> dict:
    summary: dict[str, dict] = {}
    for finding in findings:
        entry = summary.setdefault(finding.category,
                                   {'count': 0, 'bytes': 0})
        entry['count'] += 1
        entry['bytes'] += finding.bytes
    return summary


class DisksCommands:
    """Instance storage and domains: ``disks audit``, ``disks cleanup``."""

    def __init__(self, conf) -> None:
        self.conf = conf
        self.deployment = deployment_mod.Deployment(conf)

    def close(self) -> None:
        self.deployment.close()

    @staticmethod
    def _categories(chosen: list[str] | None,
                    allowed: tuple[str, ...]) -> tuple[str, ...]:
        if not chosen:
            return allowed
        unknown = sorted(set(chosen) - set(allowed))
        if unknown:
            raise UsageError('unknown categor%s %s (known: %s)' % (
                'y' if len(unknown) == 1 else 'ies', ', '.join(unknown),
                ', '.join(allowed)))
        return tuple(c for c in allowed if c in chosen)

    def _audit(self, categories, base_min_age, label) -> DiskAudit:
        audit = DiskAudit(self.deployment, categories,
                          base_min_age or DEFAULT_BASE_MIN_AGE)
        audit.run(label)
        return audit

    def audit(self, fmt: str = 'table', category: list[str] | None = None,
              base_min_age: datetime.timedelta | None = None) -> int:
        audit = self._audit(
            self._categories(category, CATEGORIES + AUDIT_ONLY),
            base_min_age, 'disks audit')
        findings = audit.findings
        summary = _summary(findings)
        footer = ['%s: %d found, %s' % (cat, s['count'],
                                        output.human_bytes(s['bytes']))
                  for cat, s in summary.items()]
        if not findings:
            footer.append('Nothing found in %s.' % self.deployment.describe())
        footer += ['ERROR: %s' % e for e in audit.errors]
        output.emit(fmt, {'scope': self.deployment.describe(),
                          'findings': [f.to_dict() for f in findings],
                          'summary': summary, 'errors': audit.errors},
                    [f.row() for f in findings], COLUMNS, footer)
        if audit.errors:
            return FAILED
        return PROBLEMS_FOUND if findings else SUCCESS

    def cleanup(self, fmt: str = 'table', category: list[str] | None = None,
                base_min_age: datetime.timedelta | None = None,
                dry_run: bool = False, yes: bool = False) -> int:
        audit = self._audit(self._categories(category, CATEGORIES),
                            base_min_age, 'disks cleanup: audit')
        findings = sorted(
            (f for f in audit.findings if f.category in CATEGORIES),
            key=lambda f: CATEGORIES.index(f.category))
        skipped = [f for f in audit.findings if f.category in AUDIT_ONLY]
        act = yes and not dry_run
        results = []
        # cleaner builds on this module's findings: imported here, not above.
        from lifecycle.manage import cleaner as cleaner_mod
        cleaner = cleaner_mod.Cleaner(audit)
        with output.Progress('disks cleanup', len(findings)) as progress:
            for finding in findings:
                result = dict(finding.to_dict(),
                              action=PLANNED[finding.category], reclaimed=0)
                if act:
                    try:
                        action, freed, detail = cleaner.apply(finding)
                        result.update(action=action, reclaimed=freed,
                                      detail=detail)
                    except Exception as e:  # noqa: BLE001 - report, go on
                        LOG.warning('Cleanup of %s %s failed: %s',
                                    finding.category, finding.resource, e)
                        message = (e.format_message() if isinstance(
                            e, exception.LifecycleException) else str(e))
                        result.update(action='failed', detail=message)
                else:
                    result['reclaimed'] = finding.bytes
                results.append(result)
                progress.step('%s %s' % (finding.category,
                                         finding.resource))
        summary: dict[str, dict] = {}
        for r in results:
            entry = summary.setdefault(r['category'], {
                'count': 0, 'done': 0, 'failed': 0, 'bytes_reclaimed': 0})
            entry['count'] += 1
            if r['action'] == 'failed':
                entry['failed'] += 1
            elif act and r['action'] != 'skipped':
                entry['done'] += 1
            entry['bytes_reclaimed'] += r['reclaimed']
        total = sum(s['bytes_reclaimed'] for s in summary.values())
        verb = 'reclaimed' if act else 'would be reclaimed'
        footer = ['%s: %d found, %d done, %d failed, %s %s' % (
            cat, s['count'], s['done'], s['failed'],
            output.human_bytes(s['bytes_reclaimed']), verb)
            for cat, s in summary.items()]
        footer.append('Total: %s %s (%d bytes).' % (
            output.human_bytes(total), verb, total))
        footer += ['NOT CLEANED (%s): %s: %s' % (f.category, f.resource,
                                                  f.detail) for f in skipped]
        footer += ['ERROR: %s' % e for e in audit.errors]
        if not act:
            footer.append('Dry run: nothing was changed.' if dry_run else
                          'Nothing was changed: add --yes to clean up (or '
                          '--dry-run to only list).')
        rows = [dict(r, bytes_human=output.human_bytes(r['reclaimed']))
                for r in results]
        output.emit(fmt, {'scope': self.deployment.describe(),
                          'dry_run': not act, 'results': results,
                          'summary': summary, 'bytes_reclaimed': total,
                          'not_cleaned': [f.to_dict() for f in skipped],
                          'errors': audit.errors},
                    rows, RESULT_COLUMNS, footer)
        if not act and not dry_run and findings:
            raise UsageError('refusing to delete without --yes')
        if audit.errors or any(r['action'] == 'failed' for r in results):
            return FAILED
        return SUCCESS
