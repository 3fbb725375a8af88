"""Where a retained disk lives, for the libvirt image backends Nova has.

File backends (``qcow2``, ``flat``/``raw``) keep the root disk in
``<instances_path>/<uuid>/disk``; the hosts of a storage group mount the
same ``instances_path``. A retained disk's directory holds a marker
(``partial_offload.json``) naming the group and the host that shelved it:
the periodic pass and ``lifecycle-manage nova disks`` look only at marked
directories, never at directories Nova manages.

Whether ``instances_path`` really is shared is learnt from the other hosts:
each host of a group writes ``<instances_path>/.partial_offload/hosts/<host>``
when it starts; a host that sees the marker of another host of its group
shares the storage with it. A host that sees none keeps stock behaviour
(full snapshot), so a mis-mounted or local ``instances_path`` never
retains a disk that no other host could run.

The RBD backend (``[libvirt] images_type = rbd``) keeps ``<uuid>_disk`` in
the pool every host of the group uses: shared by construction; its marker
is RBD image metadata (:mod:`lifecycle.nova.rbd_store`, the same
interface as :class:`FileStore`).
"""

import json
import os
import shutil

from oslo_log import log as logging
from oslo_utils import timeutils

LOG = logging.getLogger(__name__)

#: Name of the marker file inside a retained disk's instance directory.
MARKER = 'partial_offload.json'
#: Directory (inside instances_path) of the hosts' presence markers.
HOSTS_DIR = os.path.join('.partial_offload', 'hosts')
#: The root disk's file name inside the instance directory (Nova's).
ROOT_DISK = 'disk'


def file_location(instance_uuid: str) -> str:
    """``shelved_disk`` of a file-backed disk: relative to instances_path."""
    return os.path.join(instance_uuid, ROOT_DISK)


def rbd_location(pool: str, instance_uuid: str) -> str:
    """``shelved_disk`` of an RBD disk (Nova's name ``<uuid>_disk``)."""
    return 'rbd:%s/%s_%s' % (pool, instance_uuid, ROOT_DISK)


class FileStore:
    """The retained disks under one (shared) ``instances_path``."""

    def __init__(self, instances_path: str):
        self.instances_path = instances_path

    # --- presence of the group's hosts ----------------------------------

    def announce(self, host: str, group: str) -> None:
        hosts_dir = os.path.join(self.instances_path, HOSTS_DIR)
        os.makedirs(hosts_dir, exist_ok=True)
        tmp = os.path.join(hosts_dir, '.%s.tmp' % host)
        with open(tmp, 'w') as f:
            f.write(group)
        os.replace(tmp, os.path.join(hosts_dir, host))

    def hosts_of_group(self, group: str) -> set[str]:
        hosts_dir = os.path.join(self.instances_path, HOSTS_DIR)
        found = set()
        try:
            names = os.listdir(hosts_dir)
        except FileNotFoundError:
            return found
        for name in names:
            if name.startswith('.'):
                continue
            try:
                with open(os.path.join(hosts_dir, name)) as f:
                    if f.read().strip() == group:
                        found.add(name)
            except OSError:
                continue
        return found

    def shared_with_group(self, host: str, group: str) -> bool:
        return bool(self.hosts_of_group(group) - {host})

    # --- retained disks ---------------------------------------------------

    def disk_path(self, location: str) -> str:
        path = os.path.normpath(os.path.join(self.instances_path, location))
        if os.path.dirname(os.path.dirname(path)) != os.path.normpath(
                self.instances_path):
            raise ValueError('retained disk location %r is outside %s'
                             % (location, self.instances_path))
        return path

    def instance_dir(self, instance_uuid: str) -> str:
        return os.path.join(self.instances_path, instance_uuid)

    def write_marker(self, instance_uuid: str, group: str, host: str,
                     location: str) -> None:
        path = os.path.join(self.instance_dir(instance_uuid), MARKER)
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump({'storage_group': group, 'host': host,
                       'disk': location,
                       'retained_at': timeutils.utcnow().isoformat()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def read_marker(self, instance_uuid: str) -> dict | None:
        try:
            with open(os.path.join(self.instance_dir(instance_uuid),
                                   MARKER)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def remove_marker(self, instance_uuid: str) -> None:
        try:
            os.unlink(os.path.join(self.instance_dir(instance_uuid), MARKER))
        except FileNotFoundError:
            pass

    def retained(self) -> dict[str, dict]:
        """{instance uuid: marker} of every marked directory."""
        found = {}
        try:
            names = os.listdir(self.instances_path)
        except FileNotFoundError:
            return found
        for name in names:
            marker = self.read_marker(name)
            if marker is not None:
                found[name] = marker
        return found

    def disk_bytes(self, instance_uuid: str) -> int:
        """Bytes allocated by the instance directory (what removing it
        frees)."""
        total = 0
        for root, _dirs, files in os.walk(self.instance_dir(instance_uuid)):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_blocks * 512
                except OSError:
                    pass
        return total

    def remove(self, instance_uuid: str) -> None:
        """Remove the instance directory; FileNotFoundError when gone."""
        shutil.rmtree(self.instance_dir(instance_uuid))
        LOG.info('Removed retained disk directory %s',
                 self.instance_dir(instance_uuid))

    def location(self, instance_uuid: str) -> str:
        return file_location(instance_uuid)

    def describe(self, instance_uuid: str) -> str:
        """Where the disk is, for reports."""
        return self.instance_dir(instance_uuid)

    def usage(self) -> tuple[int, int]:
        """(used bytes, capacity bytes) of the file system holding
        instances_path, as ``df`` counts them (what is not available to
        unprivileged users counts as used)."""
        st = os.statvfs(self.instances_path)
        total = st.f_blocks * st.f_frsize
        return total - st.f_bavail * st.f_frsize, total
