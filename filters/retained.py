"""Where a shelved instance's retained disk is, for nova-scheduler.

Nova's RequestSpec carries no system metadata, so without a hint the
scheduler cannot tell that an unshelve must stay in a storage group. This
module reads the instance's retained-disk keys (``shelved_storage_group``,
``shelved_host``) through Nova's own objects, **once per request** (the
answer is kept on the RequestSpec object for the other filters and
weighers of the same request), and only for requests that can be an
unshelve:

* Nova is importable (inside nova-scheduler) and ``spec_obj`` is Nova's
  RequestSpec;
* ``requested_destination.cell`` is set -- Nova's conductor targets the
  instance's cell for moves of an existing instance (unshelve, migrate,
  evacuate; ``_restrict_request_spec_to_cell``), never for a boot, so
  boots cost no database read;
* not volume-backed (``is_bfv``): those keep no disk.

Then one indexed read of the instance in its cell. Nothing here imports the
service (``lifecycle``).
"""

from filters import NOVA_AVAILABLE, get_logger, names

LOG = get_logger(__name__)

#: Attribute of the RequestSpec object holding the answer for the request.
_CACHE = '_storage_group_retained_disk'
#: Nova's vm_state of an offloaded instance.
_SHELVED_OFFLOADED = 'shelved_offloaded'


def _field(obj, name):
    try:
        if name not in obj:  # Nova objects raise on unset fields
            return None
    except TypeError:
        return getattr(obj, name, None)
    return getattr(obj, name, None)


def _candidate_cell(spec_obj):
    if not NOVA_AVAILABLE or not hasattr(spec_obj, 'obj_attr_is_set'):
        return None
    if _field(spec_obj, 'is_bfv'):
        return None
    if not _field(spec_obj, 'instance_uuid'):
        return None
    destination = _field(spec_obj, 'requested_destination')
    if not destination:
        return None
    return _field(destination, 'cell')


def _read(spec_obj, cell):
    from nova import context as nova_context
    from nova import exception
    from nova import objects

    ctx = getattr(spec_obj, '_context', None)
    ctx = ctx.elevated() if ctx else nova_context.get_admin_context()
    try:
        with nova_context.target_cell(ctx, cell) as cctxt:
            inst = objects.Instance.get_by_uuid(
                cctxt, spec_obj.instance_uuid,
                expected_attrs=['system_metadata'])
    except exception.InstanceNotFound:
        return None
    if inst.vm_state != _SHELVED_OFFLOADED:
        return None
    sysmeta = inst.system_metadata
    group = sysmeta.get(names.SHELVED_STORAGE_GROUP)
    if not group or not sysmeta.get(names.SHELVED_DISK):
        return None
    return {'storage_group': group,
            'host': sysmeta.get(names.SHELVED_HOST)}


def retained_disk(spec_obj):
    """``{'storage_group': G, 'host': H}`` of the instance's retained disk,
    or None (no retained disk, not an unshelve, Nova not here)."""
    try:
        return getattr(spec_obj, _CACHE)
    except AttributeError:
        pass
    cell = _candidate_cell(spec_obj)
    answer = _read(spec_obj, cell) if cell else None
    try:
        setattr(spec_obj, _CACHE, answer)
    except AttributeError:
        pass
    if answer:
        LOG.debug('Instance %(uuid)s has a retained disk on storage group '
                  '%(group)s (shelved on %(host)s)',
                  {'uuid': spec_obj.instance_uuid,
                   'group': answer['storage_group'],
                   'host': answer['host']})
    return answer
