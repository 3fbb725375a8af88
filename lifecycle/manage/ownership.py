"""Whose is a storage root: refuse to clean up one shared with Nova.

``disks audit``/``cleanup`` treat an instance directory the database does
not know as an orphan and a base no disk of ours uses as unused. Pointed at
an ``instances_path`` that Nova uses too, that would remove Nova's
instances and the bases they boot from (and Nova's image cache, in turn,
removes ours). So before any check of a file-based storage root, every
entry is sorted into *ours* and *not ours*:

``<uuid>/`` instance directories
    Ours when they hold the project's ``disk.info`` -- a JSON object whose
    only key is ``"disk"`` -- or when the database has (or had: soft-deleted
    rows count) an instance of that UUID. The project's storage backends
    write that ``disk.info`` before the ``disk`` itself exists
    (``lifecycle.storage.base``), so every directory holding a disk of ours
    carries it, including directories of earlier releases; Nova's
    ``disk.info`` maps absolute paths to formats and is never of that form.
    Anything else (Nova's directories, an unknown one) is not ours.
``_base/``
    Ours: base files named by the 40 hex digits of a SHA-1, their
    ``.<name>.*.part`` temporaries and the ``.locks`` directory. Anything
    else (Nova's resized ``<sha1>_<GiB>`` bases, ``ephemeral_*``,
    ``swap_*``) is not.
the root itself
    Nova's ``locks/`` directory, ``compute_nodes`` file and ``snapshots/``
    directory are not ours. Other names are ignored (not evidence either
    way).

A marker file at the root was not chosen: with a shared ``instances_path``
the root would carry both the marker and Nova's instances, so it could not
tell whose each directory is; the per-directory mark can, and it needs no
upgrade step.
"""

import dataclasses
import json
import os
import re

import sqlalchemy as sa

from lifecycle.db import models
from lifecycle.storage import base as storage_base
from lifecycle.storage import paths

#: Root entries only Nova makes (nova.virt.storage_users, libvirt
#: imagecache and snapshots).
NOVA_ROOT_NAMES = ('locks', 'compute_nodes', 'snapshots')
_BASE_RE = re.compile(r'^[0-9a-f]{40}$')
_PART_RE = re.compile(r'^\.[0-9a-f]{40}\..*\.part(\.raw)?$')
_SHOWN = 5


@dataclasses.dataclass
class Report:
    """What of one storage root is not the project's."""
    root: str
    foreign_dirs: list[str] = dataclasses.field(default_factory=list)
    foreign_bases: list[str] = dataclasses.field(default_factory=list)
    foreign_root_entries: list[str] = dataclasses.field(
        default_factory=list)

    @property
    def foreign(self) -> bool:
        return bool(self.foreign_dirs or self.foreign_bases or
                    self.foreign_root_entries)

    def describe(self) -> str:
        parts = []
        for what, items in (
                ('instance directories without this project\'s disk.info '
                 'and unknown to its database', self.foreign_dirs),
                ('files in _base not named as this project names bases',
                 self.foreign_bases),
                ("Nova's files", self.foreign_root_entries)):
            if items:
                shown = ', '.join(os.path.basename(i)
                                  for i in items[:_SHOWN])
                more = (' and %d more' % (len(items) - _SHOWN)
                        if len(items) > _SHOWN else '')
                parts.append('%d %s (%s%s)' % (len(items), what, shown,
                                               more))
        return '%s holds %s' % (self.root, '; '.join(parts))

    def to_dict(self) -> dict:
        return {'root': self.root, 'instance_dirs': self.foreign_dirs,
                'bases': self.foreign_bases,
                'root_entries': self.foreign_root_entries}


def our_disk_info(inst_dir: str) -> bool:
    """True when ``inst_dir`` holds the project's ``disk.info``."""
    path = os.path.join(inst_dir, storage_base.DISK_INFO_NAME)
    try:
        if not os.path.isfile(path) or os.path.islink(path):
            return False
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and list(data) == [storage_base.DISK_NAME]


def _known_uuids(db, uuids: list[str]) -> set[str]:
    """UUIDs of ``uuids`` with an instance row, live or soft-deleted."""
    inst = models.Instance
    known: set[str] = set()
    ordered = sorted(uuids)
    with db.session() as session:
        for start in range(0, len(ordered), 500):
            known.update(session.scalars(sa.select(inst.uuid).where(
                inst.uuid.in_(ordered[start:start + 500]))))
    return known


def inspect(db, root: str) -> Report:
    """Sort the entries of ``root``; reads only."""
    report = Report(root)
    names = paths.instance_names(root)
    known = _known_uuids(db, names) if names else set()
    for name in names:
        inst_dir = os.path.join(root, name)
        if name not in known and not our_disk_info(inst_dir):
            report.foreign_dirs.append(inst_dir)
    base_dir = os.path.join(root, storage_base.BASE_DIR)
    try:
        entries = list(os.scandir(base_dir))
    except (FileNotFoundError, NotADirectoryError):
        entries = []
    for entry in entries:
        if entry.name == storage_base.LOCK_DIR and entry.is_dir(
                follow_symlinks=False):
            continue
        if _BASE_RE.match(entry.name) or _PART_RE.match(entry.name):
            continue
        report.foreign_bases.append(entry.path)
    for name in NOVA_ROOT_NAMES:
        if os.path.lexists(os.path.join(root, name)):
            report.foreign_root_entries.append(os.path.join(root, name))
    report.foreign_dirs.sort()
    report.foreign_bases.sort()
    return report
