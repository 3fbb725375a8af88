"""``lifecycle-manage nova ...``: operator commands for a Nova cloud running
the partial-offload plugin.

Reads Nova's own configuration (``--config-file /etc/nova/nova.conf``, the
file of a compute host of the storage group for ``disks``) and Nova's
databases through Nova's objects::

    lifecycle-manage nova [--config-file F] shelved list [--group G]
    lifecycle-manage nova [--config-file F] shelved show UUID
    lifecycle-manage nova [--config-file F] disks audit
    lifecycle-manage nova [--config-file F] disks cleanup --dry-run | --yes

Every command takes ``--format table|json``. Exit codes are the CLI's
(:mod:`lifecycle.manage`): 0 success (audit: nothing found), 1 failed,
2 usage or configuration (a cleanup without ``--yes`` or ``--dry-run``),
3 the audit found something.

``shelved`` lists the SHELVED_OFFLOADED servers with a retained disk: their
storage group, disk, size (when this host sees the storage), and the last
unshelve failure -- Nova records no fault when an unshelve finds no host,
but its instance action event does (``schedule_instances: Error`` with the
exception message); a compute-side failure also has an instance fault.

``disks audit`` reports, on this host's ``instances_path`` (or its Ceph
pool with ``[libvirt] images_type = rbd``): retained disks whose server is
deleted (or gone from Nova's databases: checked through the API
database's instance mapping and the cells, see :func:`instance_exists`),
base files in ``_base`` that no disk in ``instances_path`` is backed by
(file-backed only), and
``<name>-shelved`` images in Glance that no shelved server records as its
``shelved_image_id``. ``disks cleanup`` removes the first two kinds (never a
disk whose instance exists; a base only while nothing is backed by it) and
deletes the stale images.
"""

import argparse
import os
import sys

from lifecycle.manage import FAILED, PROBLEMS_FOUND, SUCCESS, USAGE
from lifecycle.manage import output

PROG = 'lifecycle-manage nova'


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split('\n\n')[0],
        epilog='Exit codes: 0 success (audit: nothing found), 1 failed, '
               '2 usage or configuration, 3 the audit found something.')
    parser.add_argument('--config-file', action='append', default=[],
                        help="Nova's configuration (repeatable); default: "
                             "Nova's own search path")
    cats = parser.add_subparsers(dest='category', metavar='CATEGORY',
                                 required=True)

    def fmt(p):
        p.add_argument('--format', choices=output.FORMATS, default='table')

    shelved = cats.add_parser('shelved', help='servers with a retained disk')
    s_act = shelved.add_subparsers(dest='action', required=True)
    p = s_act.add_parser('list', help='list them')
    p.add_argument('--group', help='only this storage group')
    fmt(p)
    p = s_act.add_parser('show', help='one server, with its unshelve '
                                      'events')
    p.add_argument('uuid')
    fmt(p)

    disks = cats.add_parser('disks', help="leftovers on this host's "
                                          "instance storage and in Glance")
    d_act = disks.add_subparsers(dest='action', required=True)
    fmt(d_act.add_parser('audit', help='report them'))
    p = d_act.add_parser('cleanup', help='remove them')
    mode = p.add_mutually_exclusive_group()
    mode.add_argument('--dry-run', action='store_true')
    mode.add_argument('--yes', action='store_true')
    fmt(p)
    return parser


# --- reading Nova ------------------------------------------------------------

def _cells(ctx):
    from nova import objects
    return objects.CellMappingList.get_all(ctx)


def _retained_in_cells(ctx):
    from nova import context as nova_context

    from lifecycle.nova import periodic
    found = []
    for cell in _cells(ctx):
        with nova_context.target_cell(ctx, cell) as cctxt:
            found.extend((cell, inst)
                         for inst in periodic.retained_instances(cctxt))
    return found


def _find_instance(ctx, instance_uuid):
    from nova import context as nova_context
    from nova import exception
    from nova import objects
    try:
        mapping = objects.InstanceMapping.get_by_instance_uuid(
            ctx, instance_uuid)
    except exception.InstanceMappingNotFound:
        return None, None
    if not mapping.cell_mapping:
        return None, None
    with nova_context.target_cell(ctx, mapping.cell_mapping) as cctxt:
        try:
            inst = objects.Instance.get_by_uuid(
                cctxt, instance_uuid, expected_attrs=['system_metadata'])
        except exception.InstanceNotFound:
            return mapping.cell_mapping, None
    return mapping.cell_mapping, inst


def instance_exists(ctx, instance_uuid: str) -> bool:
    """False only when Nova's databases say the instance is gone: its
    InstanceMapping's cell has it deleted (or not at all), or, with no
    mapping (archived), no cell has it undeleted. Read through the API
    database and each cell -- never the ``[database]`` of whatever
    nova.conf was given, which may be cell0's. A mapping without a cell (a
    server being scheduled) counts as existing. Database errors raise."""
    from nova import context as nova_context
    from nova import exception
    from nova import objects

    from lifecycle.nova import periodic
    try:
        mapping = objects.InstanceMapping.get_by_instance_uuid(
            ctx, instance_uuid)
    except exception.InstanceMappingNotFound:
        mapping = None
    if mapping is not None and not mapping.cell_mapping:
        return True
    cells = [mapping.cell_mapping] if mapping is not None else _cells(ctx)
    for cell in cells:
        with nova_context.target_cell(ctx, cell) as cctxt:
            if periodic.instance_state(cctxt, instance_uuid)[1]:
                return True
    return False


def store_of(conf):
    """The retained-disk storage of this host's Nova configuration."""
    from lifecycle.nova import storage
    if conf.libvirt.images_type == 'rbd':
        from lifecycle.nova import rbd_store
        return rbd_store.RbdStore()
    return storage.FileStore(conf.instances_path)


def _unshelve_events(cctxt, instance_uuid):
    """[(event, result, when, details)] of the last unshelve action, and
    the last instance fault's message."""
    from nova import objects
    actions = objects.InstanceActionList.get_by_instance_uuid(
        cctxt, instance_uuid)
    events = []
    for action in actions:  # newest first
        if action.action != 'unshelve':
            continue
        for event in objects.InstanceActionEventList.get_by_action(
                cctxt, action.id):
            details = event.details if 'details' in event else None
            events.append({'event': event.event, 'result': event.result,
                           'finished_at': event.finish_time,
                           'details': details})
        break
    faults = objects.InstanceFaultList.get_latest_by_instance_uuids(
        cctxt, [instance_uuid])
    fault = faults[0].message if faults else None
    return events, fault


def _last_failure(events, fault):
    failed = [e for e in events if e['result'] == 'Error']
    if not failed:
        return None
    event = failed[0]
    why = event['details'] or fault or 'no detail recorded'
    return '%s: %s' % (event['event'], why)


def _row(conf, cctxt, inst, with_events=False):
    from lifecycle import names
    from lifecycle.nova import storage
    sm = inst.system_metadata
    location = sm.get(names.SHELVED_DISK)
    size = None
    if location and not location.startswith('rbd:'):
        files = storage.FileStore(conf.instances_path)
        if os.path.isdir(files.instance_dir(inst.uuid)):
            size = files.disk_bytes(inst.uuid)
    elif location and conf.libvirt.images_type == 'rbd':
        try:
            store = store_of(conf)
            if location == store.location(inst.uuid):
                size = store.disk_bytes(inst.uuid)
        except Exception:  # size unknown, shown as such
            size = None
    events, fault = _unshelve_events(cctxt, inst.uuid)
    row = {'uuid': inst.uuid, 'name': inst.display_name,
           'project_id': inst.project_id,
           'storage_group': sm.get(names.SHELVED_STORAGE_GROUP),
           'disk': location, 'shelved_host': sm.get(names.SHELVED_HOST),
           'shelved_at': sm.get(names.SHELVED_AT),
           'disk_bytes': size, 'disk_size': output.human_bytes(size),
           'last_unshelve_failure': _last_failure(events, fault)}
    if with_events:
        row['unshelve_events'] = events
        row['last_fault'] = fault
    return row


LIST_COLUMNS = (('uuid', 'UUID'), ('name', 'Name'),
                ('storage_group', 'Storage group'),
                ('shelved_host', 'Shelved on'), ('disk_size', 'Disk size'),
                ('shelved_at', 'Shelved at'),
                ('last_unshelve_failure', 'Last unshelve failure'))


def shelved_list(conf, ctx, group=None, fmt='table', stream=None):
    from nova import context as nova_context
    rows = []
    for cell, inst in _retained_in_cells(ctx):
        with nova_context.target_cell(ctx, cell) as cctxt:
            row = _row(conf, cctxt, inst)
        if group and row['storage_group'] != group:
            continue
        rows.append(row)
    output.emit(fmt, rows, rows, LIST_COLUMNS,
                footer=['%d server(s) with a retained disk' % len(rows)],
                stream=stream)
    return SUCCESS


def shelved_show(conf, ctx, instance_uuid, fmt='table', stream=None):
    from nova import context as nova_context
    cell, inst = _find_instance(ctx, instance_uuid)
    if inst is None:
        print('%s: no server %s' % (PROG, instance_uuid), file=sys.stderr)
        return FAILED
    with nova_context.target_cell(ctx, cell) as cctxt:
        row = _row(conf, cctxt, inst, with_events=True)
    row['vm_state'] = inst.vm_state
    pairs = [{'field': k, 'value': v} for k, v in sorted(row.items())
             if k != 'unshelve_events']
    pairs += [{'field': 'unshelve event',
               'value': '%(event)s %(result)s %(details)s' % e}
              for e in row['unshelve_events']]
    output.emit(fmt, row, pairs, (('field', 'Field'), ('value', 'Value')),
                stream=stream)
    return SUCCESS


# --- disks -------------------------------------------------------------------

def _unused_bases(files):
    from lifecycle.nova import periodic
    base_dir = os.path.join(files.instances_path, '_base')
    try:
        bases = {os.path.join(base_dir, n) for n in os.listdir(base_dir)
                 if not n.startswith('.')}
    except FileNotFoundError:
        return []
    used = set()
    for name in os.listdir(files.instances_path):
        inst_dir = os.path.join(files.instances_path, name)
        if name in ('_base', 'locks', 'snapshots') or name.startswith('.') \
                or not os.path.isdir(inst_dir):
            continue
        for disk in os.listdir(inst_dir):
            path = os.path.join(inst_dir, disk)
            if not disk.startswith('disk') or disk.endswith('.info') or \
                    not os.path.isfile(path):
                continue
            try:
                backing = periodic.backing_file(path)
            except Exception:  # not qcow2: no backing file
                backing = None
            if backing:
                used.add(os.path.normpath(backing))
    return sorted(b for b in bases if os.path.normpath(b) not in used)


def _stale_images(ctx, image_api):
    """``<name>-shelved`` snapshot images no shelved server records."""
    from lifecycle import names
    stale = []
    for image in image_api.get_all(ctx):
        props = image.get('properties') or {}
        if not (image.get('name') or '').endswith('-shelved') or \
                props.get('image_type') != 'snapshot':
            continue
        owner_uuid = props.get('instance_uuid')
        _cell, inst = _find_instance(ctx, owner_uuid) if owner_uuid else (
            None, None)
        if inst is not None and inst.system_metadata.get(
                names.SHELVED_IMAGE_ID) == image['id']:
            continue
        if inst is not None and inst.task_state is not None:
            continue  # a shelve or escalation may be on its way
        stale.append({'kind': 'stale-shelved-image', 'id': image['id'],
                      'name': image.get('name'), 'instance': owner_uuid})
    return stale


def _findings(conf, ctx, image_api):
    from lifecycle.nova import periodic
    from lifecycle.nova import storage
    store = store_of(conf)
    found = []
    orphans = periodic.orphans(
        store, lambda instance_uuid: instance_exists(ctx, instance_uuid))
    for instance_uuid, marker in sorted(orphans.items()):
        found.append({'kind': 'deleted-server-disk', 'id': instance_uuid,
                      'path': store.describe(instance_uuid),
                      'storage_group': marker.get('storage_group'),
                      'bytes': store.disk_bytes(instance_uuid)})
    if isinstance(store, storage.FileStore):
        for base in _unused_bases(store):
            found.append({'kind': 'unused-base',
                          'id': os.path.basename(base), 'path': base,
                          'bytes': os.lstat(base).st_blocks * 512})
    if image_api is not None:
        found.extend(_stale_images(ctx, image_api))
    return store, found


DISK_COLUMNS = (('kind', 'Kind'), ('id', 'Id'), ('path', 'Path'),
                ('name', 'Name'), ('bytes', 'Bytes'), ('action', 'Action'))


def disks_audit(conf, ctx, image_api=None, fmt='table', stream=None):
    _files, found = _findings(conf, ctx, image_api)
    output.emit(fmt, found, found, DISK_COLUMNS,
                footer=['%d finding(s)' % len(found)], stream=stream)
    return PROBLEMS_FOUND if found else SUCCESS


def disks_cleanup(conf, ctx, image_api=None, dry_run=False, yes=False,
                  fmt='table', stream=None):
    if not (dry_run or yes):
        print('%s: disks cleanup changes storage: give --dry-run or --yes'
              % PROG, file=sys.stderr)
        return USAGE
    store, found = _findings(conf, ctx, image_api)
    failed = False
    for item in found:
        if dry_run:
            item['action'] = 'would remove'
            continue
        try:
            if item['kind'] == 'deleted-server-disk':
                # Re-checked: never a live instance's disk.
                if instance_exists(ctx, item['id']):
                    item['action'] = 'kept (instance exists)'
                    continue
                store.remove(item['id'])
            elif item['kind'] == 'unused-base':
                if item['path'] not in _unused_bases(store):
                    item['action'] = 'kept (now in use)'
                    continue
                os.unlink(item['path'])
            else:
                image_api.delete(ctx, item['id'])
            item['action'] = 'removed'
        except Exception as exc:  # reported, next item
            item['action'] = 'FAILED: %s' % exc
            failed = True
    output.emit(fmt, found, found, DISK_COLUMNS,
                footer=['%d finding(s)' % len(found)], stream=stream)
    return FAILED if failed else SUCCESS


# --- entry point -------------------------------------------------------

def run(args, conf, ctx, image_api=None, stream=None) -> int:
    """Run parsed ``args`` against an already configured Nova."""
    if args.category == 'shelved' and args.action == 'list':
        return shelved_list(conf, ctx, group=args.group, fmt=args.format,
                            stream=stream)
    if args.category == 'shelved':
        return shelved_show(conf, ctx, args.uuid, fmt=args.format,
                            stream=stream)
    if args.action == 'audit':
        return disks_audit(conf, ctx, image_api, fmt=args.format,
                           stream=stream)
    return disks_cleanup(conf, ctx, image_api, dry_run=args.dry_run,
                         yes=args.yes, fmt=args.format, stream=stream)


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else USAGE
    try:
        from nova import config
        from nova import context as nova_context
        from nova.image import glance
        from nova import objects

        import lifecycle.nova  # noqa: F401 - the [partial_offload] options
        from nova import conf as nova_conf
        conf_argv = []
        for path in args.config_file:
            conf_argv += ['--config-file', path]
        config.parse_args([PROG] + conf_argv)
        objects.register_all()
    except Exception as exc:  # no usable Nova config
        print('%s: cannot load Nova\'s configuration: %s' % (PROG, exc),
              file=sys.stderr)
        return USAGE
    ctx = nova_context.get_admin_context()
    try:
        return run(args, nova_conf.CONF, ctx, image_api=glance.API())
    except Exception as exc:  # database, Glance
        print('%s: %s' % (PROG, exc), file=sys.stderr)
        return FAILED


if __name__ == '__main__':
    sys.exit(main())
