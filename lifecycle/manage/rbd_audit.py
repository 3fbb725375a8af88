"""``disks audit | cleanup`` for storage groups kept in a Ceph RBD pool.

A Ceph storage group (``[rbd] storage_groups``, or a compute host whose
``[libvirt] images_type`` is ``rbd``) has no instance directories and no
``_base`` files to look at; its pool is listed instead (one ``rbd ls -l``
for images and snapshots, then ``rbd children`` for protected snapshots
only). Categories:

``orphan-clone``
    a root disk ``<uuid>_disk`` in the pool for which the database has no
    live instance; cleanup removes the image (the clone only, never its
    parent);
``unused-rbd-base``
    a base image ``base_<sha1>`` whose snapshot has no clone left and that
    was not imported or reused for ``--base-min-age``, or the temporary
    image of an import a crash interrupted (older than that too); cleanup
    unprotects and removes the snapshot, then the image -- refused, and
    skipped, if a clone appeared meanwhile;
``idle-protected-snapshot``
    any other protected snapshot in the pool without clones (left by a
    crash or by hand), which pins its image's data; cleanup only
    unprotects it, deleting nothing;
``missing-disk``
    as for file groups: a ``shelved_offloaded`` instance of the group whose
    clone (``shelved_disk``) is not in the pool; cleanup, after looking in
    the pool again, sets it to ``error`` with a fault.

Every finding is checked again right before cleanup acts on it.
"""

import datetime
import json
import time

from oslo_log import log as logging

from lifecycle import exception
from lifecycle.manage import findings
from lifecycle.manage import locate
from lifecycle.storage import rbd as rbd_storage
from lifecycle.storage import rbd_client
from lifecycle import names
from lifecycle import states

LOG = logging.getLogger(__name__)

def backend(deployment: locate.Deployment,
            storage: locate.Storage) -> rbd_storage.RbdBackend:
    return deployment.backend(storage.path, storage.group)


def _long_listing(b: rbd_storage.RbdBackend) -> list[dict]:
    """``rbd ls -l``: one entry per image and one per snapshot."""
    out = b.client.rbd('ls', '-l', '--format', 'json', b.pool)
    return json.loads(out) if out.strip() else []


def check(audit, storage: locate.Storage, instances) -> None:
    """Add the findings of one Ceph storage group to ``audit``."""
    b = backend(audit.deployment, storage)
    try:
        listing = _long_listing(b)
        _check(audit, storage, b, listing, instances)
    except (exception.LifecycleException, ValueError) as e:
        message = (e.format_message()
                   if isinstance(e, exception.LifecycleException) else str(e))
        audit.errors.append('Ceph pool %s of group %s not checked: %s'
                            % (b.pool, storage.group, message))


def _check(audit, storage, b, listing, instances) -> None:
    live = {i.uuid for i in instances}
    clones = {}
    for entry in listing:
        if entry.get('snapshot') is None:
            match = rbd_storage.DISK_RE.match(entry.get('image', ''))
            if match:
                clones[match.group(1)] = entry['image']
    if audit.wanted(findings.MISSING_DISK):
        images = {e.get('image') for e in listing
                  if e.get('snapshot') is None}
        for instance in instances:
            if (audit.retained_in(instance, storage) and
                    instance.vm_state == states.SHELVED_OFFLOADED and
                    instance.task_state is None and
                    instance.system_metadata[names.SHELVED_DISK]
                    not in images):
                location = instance.system_metadata[names.SHELVED_DISK]
                audit.findings.append(findings.Finding(
                    findings.MISSING_DISK, instance.uuid, group=storage.group,
                    host=instance.system_metadata.get(names.SHELVED_HOST),
                    path='rbd:%s/%s' % (b.pool, location), storage=storage,
                    backend=findings.RBD,
                    detail='not in pool %s' % b.pool,
                    extra={'display_name': instance.display_name,
                           'location': location}))
    if audit.wanted(findings.ORPHAN_CLONE):
        orphans = [u for u in clones if u not in live]
        orphans = [u for u in orphans if u not in audit.live_uuids(orphans)]
        deleted = audit.deleted_at(orphans)
        for uuid in sorted(orphans):
            when = deleted.get(uuid)
            audit.findings.append(findings.Finding(
                findings.ORPHAN_CLONE, uuid, group=storage.group,
                path='rbd:%s' % b.client.spec(clones[uuid]), storage=storage,
                backend=findings.RBD,
                bytes=b.client.used_bytes(clones[uuid]),
                detail=('instance deleted at %s' % when.isoformat()
                        if when else 'no such instance')))
    oldest = time.time() - audit.base_min_age.total_seconds()
    partials = {e['image'] for e in listing if _is_partial(e.get('image'))}
    for image in sorted(partials):
        # An import a crash interrupted; one running now is younger than
        # the minimum age.
        if (audit.wanted(findings.UNUSED_RBD_BASE) and
                b.last_used(image) <= oldest):
            audit.findings.append(findings.Finding(
                findings.UNUSED_RBD_BASE, 'rbd:%s' % b.client.spec(image),
                group=storage.group, storage=storage, backend=findings.RBD,
                bytes=b.client.used_bytes(image),
                detail='left by an interrupted import',
                extra={'_image': image}))
    for entry in listing:
        snap = entry.get('snapshot')
        if (snap is None or entry['image'] in partials or
                str(entry.get('protected')).lower() != 'true'):
            continue
        image = entry['image']
        is_base = (rbd_storage.BASE_RE.match(image) and
                   snap == rbd_storage.SNAP)
        category = (findings.UNUSED_RBD_BASE if is_base
                    else findings.IDLE_PROTECTED_SNAPSHOT)
        if not audit.wanted(category) or b.client.children(image, snap):
            continue
        if is_base:
            used = b.last_used(image)
            if used > oldest:
                continue
            audit.findings.append(findings.Finding(
                findings.UNUSED_RBD_BASE, 'rbd:%s' % b.client.spec(image),
                group=storage.group, storage=storage, backend=findings.RBD,
                bytes=b.client.used_bytes(image),
                detail='its snapshot has no clone; last used %s' %
                datetime.datetime.fromtimestamp(used, datetime.UTC).strftime(
                    '%Y-%m-%dT%H:%M:%SZ'),
                extra={'_image': image}))
        else:
            audit.findings.append(findings.Finding(
                findings.IDLE_PROTECTED_SNAPSHOT,
                'rbd:%s' % b.client.spec(image, snap), group=storage.group,
                storage=storage, backend=findings.RBD,
                detail='protected, without clones',
                extra={'_image': image, '_snap': snap}))


def _is_partial(name: str | None) -> bool:
    head, mark, _tail = (name or '').partition(rbd_storage.PARTIAL_MARK)
    return bool(mark) and bool(rbd_storage.BASE_RE.match(head))


# -- cleanup --------------------------------------------------------------

def cleanup(cleaner, finding) -> tuple[str, int, str]:
    """(action, bytes reclaimed, detail) for one finding of this module."""
    b = backend(cleaner.deployment, finding.storage)
    if finding.category == findings.MISSING_DISK:
        try:
            rbd_client.check_name(finding.extra['location'], 'image')
            if b.client.exists(finding.extra['location']):
                return 'skipped', 0, 'the clone is there now'
        except exception.InvalidInput:
            pass  # a location that cannot be an image of ours is missing
        return cleaner.record_missing_disk(finding)
    if finding.category == findings.ORPHAN_CLONE:
        if cleaner.audit.live_uuids([finding.resource]):
            return 'skipped', 0, 'the instance exists now'
        freed = b.delete(finding.resource)
        return 'removed', freed, 'clone removed'
    image = finding.extra['_image']
    if finding.category == findings.UNUSED_RBD_BASE:
        if not b.client.exists(image):
            return 'skipped', 0, 'already gone'
        if b.last_used(image) > (time.time() -
                                 cleaner.audit.base_min_age.total_seconds()):
            return 'skipped', 0, 'used again since the audit'
        freed = b.client.used_bytes(image)
        try:
            b.remove_base(image)
        except exception.BaseInUse as e:
            return 'skipped', 0, e.format_message()
        return 'removed', freed, 'snapshot unprotected, base removed'
    snap = finding.extra['_snap']
    if b.client.children(image, snap):
        return 'skipped', 0, 'it has clones now'
    try:
        b.client.snap_unprotect(image, snap)
    except exception.RbdCommandError as e:
        if e.errno == rbd_client.EBUSY:
            return 'skipped', 0, 'it has clones now'
        raise
    LOG.info('Unprotected %s (no clones)', finding.resource)
    return 'unprotected', 0, 'snapshot kept, no longer protected'
