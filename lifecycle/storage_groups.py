"""Storage groups: name rules and accounting.

A storage group is the set of hosts in aggregates whose metadata carries
``storage_group=<name>``; they see the same instance storage, laid out like
Nova's ``instances_path``. This module checks group names and tells, for each
group, how much of that storage the retained disks of shelved offloaded
instances hold and how much there is.

Accounting (what ``GET /os-aggregates/{id}`` shows under
``lifecycle:storage_group`` and ``GET /os-storage-groups`` lists)::

    {"name": "group-a",
     "retained_disks": 2,            # live instances with a retained disk
     "retained_bytes": 1048576,      # allocated bytes of their directories
     "capacity_bytes": 107374182400,
     "free_bytes": 53687091200}

- ``retained_disks`` comes from the database (system metadata
  ``shelved_storage_group`` and ``shelved_disk`` of instances not deleted),
  so it is always known.
- The byte counts are computed here, by the process serving the API, from
  the group's storage directory: the ``storage_path`` its compute hosts
  report in ``compute_nodes``. When no such directory is visible to this
  process (a multi-host deployment whose API host does not mount the shared
  storage) they are ``null`` rather than guessed. This is a deliberate
  choice: it needs no new reporting from the compute hosts and never shows a
  stale number; a deployment that wants the numbers mounts the group's
  storage read-only on the API host at the same path. The visibility test is
  that the path is a directory here; an API host with an unrelated local
  directory at that path would report that directory.
- ``retained_bytes`` is the sum of the allocated size (``st_blocks``, so
  sparse and copy-on-write disks count what they really use) of every file
  in each retained disk's instance directory ``<storage>/<uuid>/``. The
  directory is derived from the configured path and the instance's uuid,
  never from a request, and symlinks are not followed.
- ``capacity_bytes`` is configured or measured. Configured: the aggregate
  metadata key ``storage_capacity_gb`` (a positive integer of GiB; when the
  group's aggregates give several values, the smallest counts). Measured:
  the size of the file system holding the storage directory (``statvfs``).
- ``free_bytes``: measured, the space available on that file system;
  configured, the capacity minus what the whole storage directory uses
  (instance directories and ``_base``), never more than the file system has
  free. ``null`` when the storage is not visible.
"""

import os
import re
import stat

from oslo_log import log as logging

from lifecycle import exception
from lifecycle.storage import paths

LOG = logging.getLogger(__name__)

GROUP_KEY = 'storage_group'
CAPACITY_KEY = 'storage_capacity_gb'
API_KEY = 'lifecycle:storage_group'
GiB = 1024 ** 3
MAX_NAME_LENGTH = 63
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$')
_MAX_CAPACITY_GB = 2 ** 40  # 1 ZiB: far beyond any file system


def validate_name(name) -> str:
    """Return ``name`` when it is a valid storage group name, else raise
    InvalidStorageGroup (400). The name becomes a directory name, so: 1 to
    63 of ``A-Z a-z 0-9 . _ -``, starting with a letter or digit (hence no
    absolute path, no ``/``, no hidden name) and without ``..``."""
    if not isinstance(name, str) or not name:
        raise exception.InvalidStorageGroup(name=name,
                                            reason='it must not be empty')
    if len(name) > MAX_NAME_LENGTH:
        raise exception.InvalidStorageGroup(
            name=name, reason='it is longer than %d characters' %
            MAX_NAME_LENGTH)
    if not _NAME_RE.match(name) or '..' in name:
        raise exception.InvalidStorageGroup(
            name=name, reason='it must match %s and must not contain ".."' %
            _NAME_RE.pattern)
    return name


def validate_capacity(value) -> int:
    """``storage_capacity_gb`` as an int; InvalidInput unless it is a
    positive integer."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1 or number > _MAX_CAPACITY_GB:
        raise exception.InvalidInput(
            reason='%s must be a positive integer of GiB, not %r' % (
                CAPACITY_KEY, value))
    return number


def allocated_bytes(root: str, directory: str) -> int:
    """Allocated bytes of the files under ``directory`` (which must lie in
    ``root``), not following symlinks; 0 when it does not exist."""
    path = paths.confine(root, directory, allow_root=True)
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return 0  # a symlink or a file is no instance directory
    except FileNotFoundError:
        return 0
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
            elif stat.S_ISREG(info.st_mode):
                total += info.st_blocks * 512
    return total


def _visible_path(candidates: list[str]) -> str | None:
    """The first of the group's storage paths that is a directory here."""
    for path in candidates:
        if path and os.path.isabs(path) and os.path.isdir(path):
            return path
    return None


def _configured_capacity(aggregates, group: str) -> int | None:
    values = []
    for aggregate in aggregates:
        metadata = aggregate.metadata_dict
        if metadata.get(GROUP_KEY) != group or CAPACITY_KEY not in metadata:
            continue
        try:
            values.append(validate_capacity(metadata[CAPACITY_KEY]))
        except exception.InvalidInput:
            LOG.warning('Aggregate %s has an invalid %s %r; ignored',
                        aggregate.id, CAPACITY_KEY, metadata[CAPACITY_KEY])
    return min(values) * GiB if values else None


def storage_root(db, group: str) -> str | None:
    """The group's storage directory as this process sees it, or None."""
    return _visible_path(db.storage_group_paths(group))


def usage(db, group: str, *, aggregates=None,
          retained: list[tuple[str, str]] | None = None) -> dict:
    """The accounting document of one storage group (see the module
    docstring). ``aggregates`` and ``retained`` may be passed in when
    several groups are reported at once."""
    if aggregates is None:
        aggregates = db.aggregate_get_all()
    if retained is None:
        retained = db.storage_group_retained_disks(group)
    uuids = [uuid for uuid, g in retained if g == group]
    doc = {'name': group, 'retained_disks': len(uuids),
           'retained_bytes': None, 'capacity_bytes': None,
           'free_bytes': None}
    configured = _configured_capacity(aggregates, group)
    doc['capacity_bytes'] = configured
    root = storage_root(db, group)
    if root is None:
        return doc
    try:
        retained_bytes = 0
        for uuid in uuids:
            try:
                name = paths.canonical_uuid(uuid)
            except exception.InvalidInput:
                continue
            retained_bytes += allocated_bytes(root, name)
        fs = os.statvfs(root)
        fs_free = fs.f_bavail * fs.f_frsize
        if configured is None:
            doc['capacity_bytes'] = fs.f_blocks * fs.f_frsize
            doc['free_bytes'] = fs_free
        else:
            used = allocated_bytes(root, root)
            doc['free_bytes'] = max(0, min(configured - used, fs_free))
        doc['retained_bytes'] = retained_bytes
    except (OSError, exception.LifecycleException) as e:
        LOG.warning('Cannot measure storage group %s at %s: %s', group,
                    root, e)
        doc['free_bytes'] = None
        doc['capacity_bytes'] = configured
    return doc


def all_usage(db) -> list[dict]:
    """Every storage group named by an aggregate or holding retained disks
    (a group whose aggregates are gone still shows its disks), by name."""
    aggregates = db.aggregate_get_all()
    retained = db.storage_group_retained_disks()
    names = set(db.storage_group_names()) | {g for _uuid, g in retained}
    return [usage(db, name, aggregates=aggregates, retained=retained)
            for name in sorted(names)]


def group_of(aggregate) -> str | None:
    return aggregate.metadata_dict.get(GROUP_KEY)
