"""Storage groups: name rules and accounting.

A storage group is the set of hosts in aggregates whose metadata carries
``storage_group=<name>``; they see the same instance storage, laid out like
Nova's ``instances_path``. This module checks group names and tells, for each
group, how much of that storage the retained disks of shelved offloaded
instances hold and how much there is.

Accounting (what ``GET /os-aggregates/{id}`` shows under
``lifecycle:storage_group`` and ``GET /os-storage-groups`` lists, and what
the conductor's watermark escalation reads)::

    {"name": "group-a",
     "retained_disks": 2,            # live instances with a retained disk
     "retained_bytes": 1048576,      # allocated bytes of their directories
     "capacity_bytes": 107374182400,
     "free_bytes": 53687091200,
     "usage_source": "reported",     # measured | reported | unknown
     "usage_reported_by": "host-a1", # with "reported": who, and when
     "usage_reported_at": "2026-12-02T08:10:00.123456"}

- ``retained_disks`` comes from the database (system metadata
  ``shelved_storage_group`` and ``shelved_disk`` of instances not deleted),
  so it is always known.
- The byte counts come from the group's storage directory: the
  ``storage_path`` its compute hosts report in ``compute_nodes``.
  ``usage_source`` says how they were found:

  ``measured``
      That directory is visible to this process (the all-in-one, or an
      API/conductor host that mounts the group's storage at the same path),
      which measures it now. The visibility test is that the path is a
      directory here; a host with an unrelated local directory at that
      path would report that directory.
  ``reported``
      Not visible here (the usual multi-host layout: the conductor and the
      API on hosts of their own): the figures are the freshest report of a
      compute host of the group that is up (heartbeat within ``[compute]
      service_down_time``), made within three ``[compute]
      storage_report_interval``. Compute hosts measure their group's
      storage with :func:`report` every ``storage_report_interval``
      seconds (migration 0003). Ceph groups are not reported: their
      storage is the pool.
  ``unknown``
      Neither: the byte counts are ``null`` (``capacity_bytes`` shows a
      configured capacity) rather than guessed, and the watermark check
      logs that it skips the group.
- ``retained_bytes`` is the sum of the allocated size (``st_blocks``, so
  sparse and copy-on-write disks count what they really use) of every file
  in each retained disk's instance directory ``<storage>/<uuid>/``. The
  directory is derived from the configured path and the instance's uuid,
  never from a request, and symlinks are not followed. A disk retained
  after the last report counts 0 until the next one.
- ``capacity_bytes`` is configured or measured. Configured: the aggregate
  metadata key ``storage_capacity_gb`` (a positive integer of GiB; when the
  group's aggregates give several values, the smallest counts). Measured:
  the size of the file system holding the storage directory (``statvfs``).
- ``free_bytes``: measured, the space available on that file system;
  configured, the capacity minus what the whole storage directory uses
  (instance directories and ``_base``), never more than the file system has
  free. ``null`` when the usage is unknown.
"""

import dataclasses
import datetime
import json
import os
import re
import stat

from oslo_log import log as logging
from oslo_utils import timeutils

from lifecycle import exception
from lifecycle import names
from lifecycle.conf import CONF
from lifecycle.storage import paths

LOG = logging.getLogger(__name__)

GROUP_KEY = names.AGGREGATE_STORAGE_GROUP
CAPACITY_KEY = names.AGGREGATE_STORAGE_CAPACITY_GB
API_KEY = names.API_STORAGE_GROUP
GiB = 1024 ** 3
MAX_NAME_LENGTH = 63
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$')
_MAX_CAPACITY_GB = 2 ** 40  # 1 ZiB: far beyond any file system
#: ``usage_source`` of the accounting document.
SOURCE_MEASURED = 'measured'
SOURCE_REPORTED = 'reported'
SOURCE_UNKNOWN = 'unknown'


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
    """:func:`lifecycle.storage.paths.allocated_bytes` of ``directory``
    (which must lie in ``root``); 0 for a symlink or a file, which is no
    instance directory."""
    path = paths.confine(root, directory, allow_root=True)
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return 0
    except FileNotFoundError:
        return 0
    return paths.allocated_bytes(path)


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


@dataclasses.dataclass
class Measurement:
    """What one process sees of a group's storage directory."""
    capacity_bytes: int   # size of the file system holding it
    free_bytes: int       # available on that file system
    used_bytes: int | None  # allocated under the directory (when walked)
    disk_bytes: dict[str, int]  # instance uuid -> allocated bytes


def measure(root: str, uuids: list[str], *, whole: bool) -> Measurement:
    """Measure ``root``: the file system, the instance directories of
    ``uuids`` and, with ``whole``, everything under ``root``. Raises
    OSError or LifecycleException when the storage cannot be read."""
    disk_bytes = {}
    for uuid in uuids:
        try:
            name = paths.canonical_uuid(uuid)
        except exception.InvalidInput:
            continue
        disk_bytes[name] = allocated_bytes(root, name)
    fs = os.statvfs(root)
    return Measurement(capacity_bytes=fs.f_blocks * fs.f_frsize,
                       free_bytes=fs.f_bavail * fs.f_frsize,
                       used_bytes=allocated_bytes(root, root) if whole
                       else None,
                       disk_bytes=disk_bytes)


def _reported(db, group: str) -> tuple[Measurement, str, str] | None:
    """The freshest report of a live host of the group: (measurement,
    host, when), or None. Live: a heartbeat within ``[compute]
    service_down_time``; fresh: reported within three ``[compute]
    storage_report_interval``."""
    now = timeutils.utcnow()
    interval = CONF.compute.storage_report_interval
    if interval <= 0:
        return None
    node = db.storage_group_report(
        group,
        up_since=now - datetime.timedelta(
            seconds=CONF.compute.service_down_time),
        reported_since=now - datetime.timedelta(seconds=3 * interval))
    if node is None or node.storage_capacity_bytes is None:
        return None
    try:
        disk_bytes = {str(k): int(v) for k, v in json.loads(
            node.storage_disk_bytes or '{}').items()}
    except (ValueError, TypeError, AttributeError):
        LOG.warning('Host %s reported unreadable disk sizes for storage '
                    'group %s; ignored', node.host, group)
        disk_bytes = {}
    return (Measurement(capacity_bytes=node.storage_capacity_bytes,
                        free_bytes=node.storage_free_bytes,
                        used_bytes=node.storage_used_bytes,
                        disk_bytes=disk_bytes),
            node.host, node.storage_reported_at.isoformat())


def figures(db, group: str, *, aggregates=None,
            retained: list[tuple[str, str]] | None = None
            ) -> tuple[dict, dict[str, int]]:
    """The accounting document of one storage group (see the module
    docstring) and the allocated bytes of each of its retained disks (empty
    when unknown). ``aggregates`` and ``retained`` may be passed in when
    several groups are reported at once."""
    if aggregates is None:
        aggregates = db.aggregate_get_all()
    if retained is None:
        retained = db.storage_group_retained_disks(group)
    uuids = [uuid for uuid, g in retained if g == group]
    configured = _configured_capacity(aggregates, group)
    doc = {'name': group, 'retained_disks': len(uuids),
           'retained_bytes': None, 'capacity_bytes': configured,
           'free_bytes': None, 'usage_source': SOURCE_UNKNOWN,
           'usage_reported_by': None, 'usage_reported_at': None}
    root = storage_root(db, group)
    found = None
    if root is not None:
        try:
            found = measure(root, uuids, whole=configured is not None)
            doc['usage_source'] = SOURCE_MEASURED
        except (OSError, exception.LifecycleException) as e:
            LOG.warning('Cannot measure storage group %s at %s: %s', group,
                        root, e)
    if found is None:
        report = _reported(db, group)
        if report is None:
            return doc, {}
        found, doc['usage_reported_by'], doc['usage_reported_at'] = report
        doc['usage_source'] = SOURCE_REPORTED
    doc['retained_bytes'] = sum(found.disk_bytes.get(uuid, 0)
                                for uuid in uuids)
    if configured is None:
        doc['capacity_bytes'] = found.capacity_bytes
        doc['free_bytes'] = found.free_bytes
    elif found.used_bytes is not None:
        doc['free_bytes'] = max(0, min(configured - found.used_bytes,
                                       found.free_bytes))
    return doc, found.disk_bytes


def usage(db, group: str, *, aggregates=None,
          retained: list[tuple[str, str]] | None = None) -> dict:
    """The accounting document of one storage group."""
    return figures(db, group, aggregates=aggregates, retained=retained)[0]


def report(db, host: str, root: str) -> None:
    """A compute host's storage report: what ``host`` sees at ``root`` of
    its group's storage, for processes that do not mount it. Nothing is
    reported for a host in no storage group."""
    group = db.storage_group_of_host(host)
    if group is None:
        return
    uuids = [uuid for uuid, _g in db.storage_group_retained_disks(group)]
    found = measure(root, uuids, whole=True)
    db.compute_node_report_storage(host, {
        'storage_capacity_bytes': found.capacity_bytes,
        'storage_free_bytes': found.free_bytes,
        'storage_used_bytes': found.used_bytes,
        'storage_disk_bytes': json.dumps(found.disk_bytes, sort_keys=True)})


def all_usage(db) -> list[dict]:
    """Every storage group named by an aggregate or holding retained disks
    (a group whose aggregates are gone still shows its disks), by name."""
    aggregates = db.aggregate_get_all()
    retained = db.storage_group_retained_disks()
    groups = set(db.storage_group_names()) | {g for _uuid, g in retained}
    return [usage(db, name, aggregates=aggregates, retained=retained)
            for name in sorted(groups)]


def group_of(aggregate) -> str | None:
    return aggregate.metadata_dict.get(GROUP_KEY)
