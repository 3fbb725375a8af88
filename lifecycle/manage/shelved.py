"""``lifecycle-manage shelved list | show | purge-deleted``.

``list`` and ``show`` only read: the database for the instances and their
``shelved_*`` system metadata, the storage group's directory for the
disk's sizes (``qemu-img info`` with the format recorded in
``disk.info``, never probed). ``purge-deleted`` removes soft-deleted
instance rows and everything hanging off them (metadata, system metadata,
faults); it deletes only with ``--yes`` and never with ``--dry-run``.

``shelved full-offload`` (partial → full offload by hand: the disk goes
to the image service) is :mod:`lifecycle.manage.shelved_full_offload`.
"""

import datetime
import os
import stat
import sys

import sqlalchemy as sa
from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import exception
from lifecycle import states
from lifecycle.db import models
from lifecycle.manage import CommandFailed
from lifecycle.manage import FAILED
from lifecycle.manage import SUCCESS
from lifecycle.manage import UsageError
from lifecycle.manage import cli
from lifecycle.manage import locate
from lifecycle.manage import output
from lifecycle.manage import shelved_full_offload
from lifecycle.storage import qemu_img
from lifecycle.storage import paths
from lifecycle import names

LOG = logging.getLogger(__name__)

SHELVED_STATES = (states.SHELVED, states.SHELVED_OFFLOADED)
LIST_COLUMNS = (('uuid', 'UUID'), ('name', 'Name'), ('vm_state', 'State'),
                ('storage_group', 'Storage group'),
                (names.SHELVED_HOST, 'Shelved on'), ('since', 'Since'),
                ('size_on_disk_human', 'Size on disk'),
                ('memory_state_human', 'Memory kept'), ('disk', 'Disk'))
PURGE_COLUMNS = (('uuid', 'UUID'), ('name', 'Name'),
                 ('deleted_at', 'Deleted at'), ('metadata', 'Metadata'),
                 ('system_metadata', 'System metadata'),
                 ('faults', 'Faults'), ('action', 'Action'))
_PURGE_BATCH = 200


def _utcnow() -> datetime.datetime:
    return timeutils.utcnow().replace(tzinfo=None)


def _parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return timeutils.parse_isotime(value).replace(tzinfo=None)
    except ValueError:
        return None


def _allocated(path: str) -> int | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_blocks * 512 if stat.S_ISREG(st.st_mode) else None


class ShelvedCommands:
    """Shelved instances: ``list``, ``show``, ``offload``,
    ``purge-deleted``."""

    def __init__(self, conf) -> None:
        self.conf = conf
        self.deployment = locate.Deployment(conf)
        self.db = self.deployment.db

    def close(self) -> None:
        self.deployment.close()

    # -- where a shelved instance's disk is ----------------------------------

    def _group_of(self, instance: models.Instance) -> str | None:
        group = instance.system_metadata.get(names.SHELVED_STORAGE_GROUP)
        if group:
            return group
        host = (instance.host or
                instance.system_metadata.get(names.SHELVED_HOST))
        if not host:
            return None
        try:
            return self.db.storage_group_of_host(host)
        except exception.InvalidConfiguration:
            return None

    def _disk_path(self, instance: models.Instance,
                   group: str | None) -> tuple[str | None, str | None]:
        """(path, storage root) of the instance's root disk, or Nones when
        its storage is not known here. UnsafePath for a recorded location
        outside the storage."""
        sysmeta = instance.system_metadata
        host = sysmeta.get(names.SHELVED_HOST) or instance.host
        root = self.deployment.storage_path(group, host)
        if root is None:
            return None, None
        location = sysmeta.get(names.SHELVED_DISK) or os.path.join(
            instance.uuid, 'disk')
        return paths.confine(root, location), root

    # -- list ---------------------------------------------------------------

    def list_(self, fmt: str = 'table', group: str | None = None,
             older_than: datetime.timedelta | None = None) -> int:
        cutoff = _utcnow() - older_than if older_than is not None else None
        rows = []
        for instance in self.db.instance_get_all(vm_states=SHELVED_STATES):
            sysmeta = instance.system_metadata
            inst_group = self._group_of(instance)
            if group is not None and inst_group != group:
                continue
            since = _parse_time(sysmeta.get(names.SHELVED_AT))
            if cutoff is not None and (since is None or since > cutoff):
                continue
            try:
                path, _root = self._disk_path(instance, inst_group)
            except exception.UnsafePath:
                path = None
            size = _allocated(path) if path else None
            memory = self._memory_state(instance, path)
            rows.append({
                'uuid': instance.uuid, 'name': instance.display_name,
                'vm_state': instance.vm_state,
                'task_state': instance.task_state,
                'storage_group': inst_group,
                names.SHELVED_HOST: sysmeta.get(names.SHELVED_HOST),
                'since': sysmeta.get(names.SHELVED_AT),
                'disk': path, 'size_on_disk': size,
                'size_on_disk_human': output.human_bytes(size),
                'memory_state': memory,
                'memory_state_human': (
                    '' if memory is None else
                    output.human_bytes(memory['size']) if memory['size']
                    is not None else 'missing'),
            })
        rows.sort(key=lambda r: (r['since'] or '', r['uuid']))
        output.emit(fmt, {'shelved': [
            {k: v for k, v in r.items() if not k.endswith('_human')}
            for r in rows]}, rows, LIST_COLUMNS,
            ['%d shelved instance(s).' % len(rows)])
        return SUCCESS

    # -- show ---------------------------------------------------------------

    def show(self, uuid: str, fmt: str = 'table') -> int:
        try:
            uuid = paths.canonical_uuid(uuid)
        except exception.InvalidInput as e:
            raise UsageError(e.format_message()) from e
        try:
            instance = self.db.instance_get(uuid)
        except exception.InstanceNotFound as e:
            raise CommandFailed(e.format_message()) from e
        if instance.vm_state not in SHELVED_STATES:
            raise CommandFailed('instance %s is not shelved (vm_state %s)'
                                % (uuid, instance.vm_state))
        sysmeta = instance.system_metadata
        group = self._group_of(instance)
        doc = {'uuid': uuid, 'name': instance.display_name,
               'vm_state': instance.vm_state,
               'task_state': instance.task_state,
               'storage_group': group,
               names.SHELVED_HOST: sysmeta.get(names.SHELVED_HOST),
               'since': sysmeta.get(names.SHELVED_AT),
               'location': sysmeta.get(names.SHELVED_DISK),
               'disk': None, 'disk_present': False, 'format': None,
               'size_on_disk': None, 'virtual_size': None,
               'base_file': None, 'delta_over_base': None}
        problem = None
        try:
            path, root = self._disk_path(instance, group)
        except exception.UnsafePath as e:
            path, root, problem = None, None, e.format_message()
        if path is None and problem is None:
            problem = 'the storage of group %s is not known here' % group
        if path is not None:
            doc['disk'] = path
            problem = self._describe_disk(doc, instance, path, root)
        doc['memory_state'] = self._memory_state(instance, path)
        rows = [{'property': k, 'value': self._show_value(k, v)}
                for k, v in doc.items()]
        output.emit(fmt, doc, rows, (('property', 'Property'),
                                     ('value', 'Value')))
        if problem:
            LOG.error('Instance %s: %s', uuid, problem)
            return FAILED
        return SUCCESS

    @staticmethod
    def _memory_state(instance: models.Instance,
                      disk_path: str | None) -> dict | None:
        """A hibernate-shelve's saved memory (beside the disk): its
        location and allocated size (None: the file is missing or its
        storage is not known here); None for a plain shelve."""
        location = instance.system_metadata.get(names.SHELVED_MEMORY_STATE)
        if not location:
            return None
        size = None
        if disk_path is not None:
            size = _allocated(os.path.join(os.path.dirname(disk_path),
                                           os.path.basename(location)))
        return {'location': location, 'size': size}

    @staticmethod
    def _show_value(key: str, value):
        if key in ('size_on_disk', 'virtual_size',
                   'delta_over_base') and value is not None:
            return '%s (%d bytes)' % (output.human_bytes(value), value)
        return value

    def _describe_disk(self, doc: dict, instance: models.Instance,
                       path: str, root: str) -> str | None:
        size = _allocated(path)
        if size is None:
            return 'root disk %s is missing' % path
        doc['disk_present'] = True
        doc['size_on_disk'] = size
        backend = self.deployment.backend(root)
        fmt = backend.disk_format
        if path == backend.disk_path(instance.uuid):
            fmt = backend.disk_info(instance.uuid).format
        doc['format'] = fmt
        try:
            data = qemu_img.info(path, fmt)
        except exception.StorageError as e:
            return e.format_message()
        doc['virtual_size'] = int(data['virtual-size'])
        doc['base_file'] = (data.get('full-backing-filename') or
                            data.get('backing-filename'))
        # A qcow2 overlay holds only what the guest wrote over its base:
        # all of its allocation is delta. A disk with no base is all its own.
        doc['delta_over_base'] = size if doc['base_file'] else None
        return None

    # -- purge-deleted ------------------------------------------------------

    def full_offload(self, fmt: str = 'table', uuids=None,
                     group: str | None = None,
                     older_than: datetime.timedelta | None = None,
                     dry_run: bool = False, yes: bool = False) -> int:
        """Partial → full offload (see
        lifecycle.manage.shelved_full_offload)."""
        return shelved_full_offload.offload(self.deployment, fmt, uuids,
                                            group, older_than, dry_run, yes)

    def offload(self, fmt: str = 'table', uuids=None,
                group: str | None = None,
                older_than: datetime.timedelta | None = None,
                dry_run: bool = False, yes: bool = False) -> int:
        """The deprecated name of :meth:`full_offload`."""
        # On stderr whatever the logging set-up: scripts must see it.
        print('lifecycle-manage: "shelved offload" is deprecated: it is a '
              'FULL offload (disk uploaded to the image service), unlike the '
              'API\'s shelveOffload; use "shelved full-offload"',
              file=sys.stderr)
        return self.full_offload(fmt, uuids, group, older_than, dry_run, yes)

    def purge_deleted(self, fmt: str = 'table',
                      older_than: datetime.timedelta | None = None,
                      dry_run: bool = False, yes: bool = False) -> int:
        inst = models.Instance
        query = sa.select(inst).where(inst.deleted_at.is_not(None))
        if older_than is not None:
            query = query.where(inst.deleted_at <= _utcnow() - older_than)
        with self.db.session() as session:
            doomed = list(session.scalars(query.order_by(inst.deleted_at,
                                                         inst.id)))
        act = yes and not dry_run
        rows = [{'uuid': i.uuid, 'name': i.display_name,
                 'deleted_at': i.deleted_at.isoformat(),
                 'metadata': len(i.metadata_items),
                 'system_metadata': len(i.system_metadata_items),
                 'faults': len(i.faults),
                 'action': 'would purge'} for i in doomed]
        purged = 0
        if act:
            uuids = [i.uuid for i in doomed]
            with output.Progress('shelved purge-deleted',
                                 len(uuids)) as progress:
                for start in range(0, len(uuids), _PURGE_BATCH):
                    batch = uuids[start:start + _PURGE_BATCH]
                    purged += self._purge(batch)
                    for uuid in batch:
                        progress.step(uuid)
            for row in rows:
                row['action'] = 'purged'
        footer = ['%d soft-deleted instance(s) %s.' % (
            purged if act else len(rows),
            'purged' if act else 'would be purged')]
        if not act:
            footer.append('Dry run: nothing was changed.' if dry_run else
                          'Nothing was changed: add --yes to purge (or '
                          '--dry-run to only list).')
        output.emit(fmt, {'dry_run': not act, 'purged': purged,
                          'instances': rows}, rows, PURGE_COLUMNS, footer)
        if not act and not dry_run and rows:
            raise UsageError('refusing to purge without --yes')
        return SUCCESS

    def _purge(self, uuids: list[str]) -> int:
        """Delete the rows of soft-deleted instances ``uuids`` and their
        children in one transaction; returns the instances purged."""
        inst = models.Instance
        with self.db.session() as session:
            for child in (models.InstanceMetadata,
                          models.InstanceSystemMetadata,
                          models.InstanceFault):
                session.execute(sa.delete(child).where(
                    child.instance_uuid.in_(
                        sa.select(inst.uuid).where(
                            inst.uuid.in_(uuids),
                            inst.deleted_at.is_not(None)))))
            return session.execute(sa.delete(inst).where(
                inst.uuid.in_(uuids),
                inst.deleted_at.is_not(None))).rowcount


def register(subparsers) -> dict[str, type]:
    actions = cli.add_category(
        subparsers, 'shelved', 'shelved instances (list, show, '
        'full-offload, purge-deleted)',
        'Shelved and shelved-offloaded instances and their retained disks. '
        'list and show only read; full-offload and purge-deleted change '
        'something only with --yes.')
    listing = cli.add_action(
        actions, 'list', 'shelved and shelved-offloaded instances, oldest '
        'first, with their storage group and retained disk')
    listing.add_argument('--group', metavar='GROUP',
                         help='only instances of this storage group')
    cli.add_older_than(listing, 'instances shelved longer ago than '
                                'OLDER_THAN')
    cli.add_format(listing)
    show = cli.add_action(
        actions, 'show', "one shelved instance's retained disk (location, "
        'format, size on disk, base); exit 1 when the disk is missing')
    show.add_argument('uuid', metavar='UUID',
                      help='the instance (server) UUID')
    cli.add_format(show)
    escalate = cli.add_action(
        actions, 'full-offload',
        'escalate partial offloads to FULL offloads: upload retained disks '
        'to the image service, then free them',
        'Escalate partially offloaded instances to a full offload: each '
        'retained disk is uploaded to the image service (verified), the '
        'image id recorded, and only then the disk freed; unshelve will '
        'then download the image. This is NOT the API\'s shelveOffload '
        '(which keeps the disk). Without UUID and --group every storage '
        'group is concerned: the command asks on the terminal first (no '
        'terminal: it refuses, exit 2) unless --yes. Runs where the '
        'retained disks are visible (all-in-one, or a compute host of the '
        'group). The old name "offload" still works (deprecated).',
        aliases=('offload',))
    escalate.add_argument('uuids', nargs='*', metavar='UUID',
                          help='only these instances (default: every '
                               'partially offloaded one in scope)')
    escalate.add_argument('--group', metavar='GROUP',
                          help='only instances of this storage group')
    cli.add_older_than(escalate, 'instances shelved longer ago than '
                                 'OLDER_THAN')
    cli.add_change(escalate, 'offloaded')
    cli.add_format(escalate)
    purge = cli.add_action(
        actions, 'purge-deleted', 'remove the rows of soft-deleted '
        'instances (and their metadata and faults)')
    cli.add_older_than(purge, 'rows deleted longer ago than OLDER_THAN')
    cli.add_change(purge, 'purged')
    cli.add_format(purge)
    return {'shelved': ShelvedCommands}
