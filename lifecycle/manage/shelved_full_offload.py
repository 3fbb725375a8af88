"""``lifecycle-manage shelved full-offload``: escalate partial offloads to
full ones (upload the retained disk to the image service, then free it).
Not the API's ``shelveOffload``, which keeps the disk.

It runs where the retained disks are visible (the all-in-one's host, or a
compute host of the group) and drives the compute manager's own
``offload_retained_disk``, so the order of steps -- verified image, durable
image id, then the disk freed -- is the service's, not a copy of it.
"""

import datetime
import sys

from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import context as lc_context
from lifecycle import exception
from lifecycle import states
from lifecycle.compute import manager as compute_manager
from lifecycle.manage import FAILED
from lifecycle.manage import SUCCESS
from lifecycle.manage import UsageError
from lifecycle.manage import cli
from lifecycle.manage import image_source
from lifecycle.manage import output
from lifecycle import names

LOG = logging.getLogger(__name__)

COLUMNS = (('uuid', 'UUID'), ('name', 'Name'),
           ('storage_group', 'Storage group'), ('since', 'Shelved at'),
           ('image_id', 'Image'), ('action', 'Action'))


def _candidates(deployment, uuids, group, older_than):
    cutoff = (timeutils.utcnow() - older_than) if older_than else None
    wanted = set(uuids or [])
    for instance in deployment.db.instance_get_all(
            vm_states=[states.SHELVED_OFFLOADED]):
        sysmeta = instance.system_metadata
        if wanted and instance.uuid not in wanted:
            continue
        if not sysmeta.get(names.SHELVED_DISK) or instance.task_state:
            continue
        if group and sysmeta.get(names.SHELVED_STORAGE_GROUP) != group:
            continue
        since = sysmeta.get(names.SHELVED_AT)
        if cutoff and (not since or timeutils.parse_isotime(since).replace(
                tzinfo=None) > cutoff):
            continue
        yield instance


def offload(deployment, fmt: str = 'table', uuids=None,
            group: str | None = None,
            older_than: datetime.timedelta | None = None,
            dry_run: bool = False, yes: bool = False) -> int:
    instances = list(_candidates(deployment, uuids, group, older_than))
    missing = set(uuids or []) - {i.uuid for i in instances}
    if missing:
        raise UsageError('not partially offloaded (or busy): %s' %
                         ', '.join(sorted(missing)))
    rows = [{'uuid': i.uuid, 'name': i.display_name,
             'storage_group':
                 i.system_metadata.get(names.SHELVED_STORAGE_GROUP),
             'since': i.system_metadata.get(names.SHELVED_AT),
             'image_id': None,
             'action': 'would offload'} for i in instances]
    act = yes and not dry_run
    if not act and not dry_run and rows and not uuids and not group:
        # Every storage group at once: ask on the terminal (the plan on
        # stderr: stdout stays one answer), refuse when there is none.
        output.emit('table', None, rows, COLUMNS, stream=sys.stderr)
        groups = sorted({r['storage_group'] or '-' for r in rows})
        cli.confirm('Fully offload %d instance(s) of EVERY storage group '
                    '(%s): upload each retained disk to the image service '
                    'and free it?' % (len(rows), ', '.join(groups)))
        act = True
    failures = 0
    if act and instances:
        images = image_source.image_service(deployment.conf, create=True)
        context = lc_context.get_admin_context()
        with output.Progress('shelved full-offload',
                             len(instances)) as progress:
            for row, instance in zip(rows, instances, strict=True):
                row['action'], row['image_id'] = _offload_one(
                    deployment, images, context, instance)
                failures += row['action'] != 'offloaded'
                progress.step(instance.uuid)
    footer = ['%d instance(s) %s.' % (len(rows), 'processed' if act else
                                      'would be fully offloaded')]
    if not act:
        footer.append('Dry run: nothing was changed.' if dry_run else
                      'Nothing was changed: add --yes to offload (or '
                      '--dry-run to only list).')
    output.emit(fmt, {'dry_run': not act, 'instances': rows}, rows, COLUMNS,
                footer)
    if not act and not dry_run and rows:
        raise UsageError('refusing to offload without --yes')
    return FAILED if failures else SUCCESS


def _offload_one(deployment, images, context, instance):
    sysmeta = instance.system_metadata
    path = deployment.storage_path(sysmeta.get(names.SHELVED_STORAGE_GROUP),
                                   sysmeta.get(names.SHELVED_HOST))
    if path is None:
        return 'skipped: storage not visible here', None
    manager = compute_manager.ComputeManager(
        sysmeta.get(names.SHELVED_HOST) or deployment.hosts[0], deployment.db,
        None,
        deployment.backend(path, sysmeta.get(names.SHELVED_STORAGE_GROUP)),
        images, vcpus=0, memory_mb=0)
    try:
        deployment.db.instance_update(
            instance.uuid, {'task_state': states.SHELVING_IMAGE_UPLOADING},
            expected_vm_state=[states.SHELVED_OFFLOADED],
            expected_task_state=None, action='shelveOffload')
    except exception.InstanceInvalidState:
        return 'skipped: busy', None
    try:
        manager.offload_retained_disk(context, instance.uuid)
    except Exception as e:  # the manager recorded a fault
        LOG.error('Full offload of %s failed: %s', instance.uuid, e)
        return 'failed: %s' % e, None
    image_id = deployment.db.instance_get(
        instance.uuid).system_metadata.get(names.SHELVED_IMAGE_ID)
    return 'offloaded', image_id
