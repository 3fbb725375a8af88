"""Comparison 1: shelve/unshelve latency and bytes moved vs. root-disk size.

One all-in-one (in this process) on real libvirtd + QEMU
(``qemu:///system``, KVM when usable), three hosts: ``host-a1`` and
``host-a2`` share storage group ``group-a``, ``host-b1`` is ``group-b``.
For each size an instance is booted on ``host-a1`` with a 20 GiB root disk
(qcow2 overlay over the shared raw base), stopped, and ``size`` bytes of
incompressible random data are written into its overlay. Then, for each run,
in this order:

* **floor**: the domain XML the driver would define for it
  (``domain_xml.build_domain_xml`` of the compute manager's spec), defined
  and started on a libvirt connection of this process (``defineXML`` +
  ``create``: what ``virsh define`` + ``virsh start`` do, without spawning
  virsh); shelve = ``destroy`` + ``undefine``. The same through the virsh
  command line is recorded as ``floor_virsh``;
* **partial, same host**: ``unshelve`` (null body: the original host is
  tried first), then ``shelve`` (offload at once: ``shelved_offload_time =
  0``);
* **partial, other host**: ``unshelve`` with ``{"host": <the other host of
  the group>}`` (2.91), then ``shelve``.

Then the same instance goes through ``[shelve] offload_mode = full`` cycles
against the real Glance (``shelve``: power off, undefine, flatten the
overlay with ``qemu-img convert``, upload, verify, delete the retained disk;
``unshelve``: download, check, convert to the raw base, create an overlay,
define and start), with unused bases removed between cycles (untimed).

Timing: start just before the REST request; end when the instance's final
state transition is committed (``Database.instance_update`` returning a
row with ``task_state`` NULL, observed by wrapping that method of the
running all-in-one -- no polling). The client's view is measured in the
same operation: from the same start to the first ``GET /servers/{id}``
answer that shows the final status with no task, the client polling every
``CLIENT_POLL_SECONDS`` from the moment the 202 arrives (so it includes
the API's reads and up to one polling interval; the polling load is on
the same all-in-one). ``[DEFAULT] shutdown_timeout = 0``: the
OS-less guest never answers an ACPI shutdown, so shelve powers it off hard,
as the floor's ``destroy`` does.

Bytes: uploaded/downloaded are the sizes handed to/received from the image
service (wrapping its ``upload``/``download``); ``io_written`` is this
process's ``write_bytes`` (/proc/self/io, including reaped ``qemu-img``
children) over the operation: the disk data written to instance storage,
plus a few KiB of SQLite commits and log lines.
"""

import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time

import libvirt

from lifecycle.conf import CONF
from lifecycle.virt import domain_xml
from lifecycle import names
from tools.bench import aio as bench_aio
from tools.bench import common

HOSTS = ['host-a1:group-a', 'host-a2:group-a', 'host-b1:group-b']
FLAVOR_ID = 'bench-lat'
RPC_TIMEOUT = 1800
# How often the measured client polls the server it waits for: often
# enough that the interval is a small part of a half-second operation, not
# so often that its GETs compete with the operation for the process.
CLIENT_POLL_SECONDS = 0.02
# The status the API shows for a vm_state the recorder waits for.
_API_STATUS = {'active': 'ACTIVE', 'shelved_offloaded': 'SHELVED_OFFLOADED'}
_UNDEFINE_FLAGS = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                   | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                   | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


def libvirt_usable(uri: str) -> bool:
    try:
        conn = libvirt.open(uri)
        conn.close()
        return True
    except libvirt.libvirtError:
        return False


class Recorder:
    """Wraps the all-in-one's database and image service to see the end
    of each operation and the bytes moved."""

    def __init__(self, aio) -> None:
        self.aio = aio
        self._events: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()
        self.uploaded = 0
        self.downloaded = 0
        db = aio.db
        original_update = db.instance_update

        def instance_update(instance_uuid, values, *args, **kwargs):
            result = original_update(instance_uuid, values, *args, **kwargs)
            now = time.monotonic()
            if getattr(result, 'task_state', 'x') is None:
                self._queue(instance_uuid).put((result.vm_state, now))
            return result

        db.instance_update = instance_update
        images = aio.images
        original_upload = images.upload
        original_download = images.download

        def upload(name, src_path, *args, **kwargs):
            size = os.path.getsize(src_path)
            result = original_upload(name, src_path, *args, **kwargs)
            with self._lock:
                self.uploaded += size
            return result

        def download(image_id, dest_path, *args, **kwargs):
            result = original_download(image_id, dest_path, *args, **kwargs)
            with self._lock:
                self.downloaded += os.path.getsize(dest_path)
            return result

        images.upload = upload
        images.download = download

        # Time spent in the libvirt driver per instance: what the service
        # adds around it is the rest of an operation.
        self._driver_seconds: dict[str, float] = {}
        driver = aio.driver
        for name in ('spawn', 'power_on', 'power_off', 'undefine'):
            setattr(driver, name, self._timed_driver_call(
                getattr(driver, name), name == 'spawn'))

    def _timed_driver_call(self, method, takes_spec: bool):
        def call(arg, *args, **kwargs):
            t0 = time.monotonic()
            try:
                return method(arg, *args, **kwargs)
            finally:
                uuid = arg.uuid if takes_spec else arg
                with self._lock:
                    self._driver_seconds[uuid] = self._driver_seconds.get(
                        uuid, 0.0) + time.monotonic() - t0
        return call

    def driver_seconds(self, instance_uuid: str) -> float:
        with self._lock:
            return self._driver_seconds.get(instance_uuid, 0.0)

    def _queue(self, instance_uuid: str) -> queue.Queue:
        with self._lock:
            return self._events.setdefault(instance_uuid, queue.Queue())

    def drain(self, instance_uuid: str) -> None:
        q = self._queue(instance_uuid)
        while not q.empty():
            q.get_nowait()

    def wait(self, instance_uuid: str, vm_state: str,
             timeout: float) -> float:
        """Monotonic time of the commit that left ``vm_state`` with no
        task."""
        q = self._queue(instance_uuid)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError('instance %s did not reach %s in %d s' % (
                    instance_uuid, vm_state, timeout))
            try:
                state, when = q.get(timeout=min(remaining, 5.0))
            except queue.Empty:
                # A change made without instance_update (the conductor
                # giving up releases the claim and clears the task).
                instance = self.aio.db.instance_get(instance_uuid)
                if (instance.task_state is None and
                        instance.vm_state != vm_state):
                    fault = instance.fault
                    raise RuntimeError('instance %s is %s, not %s: %s' % (
                        instance_uuid, instance.vm_state, vm_state,
                        fault.message if fault else 'no fault')) from None
                continue
            if state == vm_state:
                return when
            if state == 'error':
                raise RuntimeError('instance %s went to ERROR' %
                                   instance_uuid)

    def counters(self) -> tuple[int, int, int]:
        with self._lock:
            return self.uploaded, self.downloaded, common.io_written()


class Timed:
    """One measured operation: seconds and bytes."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def __enter__(self):
        self.up0, self.down0, self.io0 = self.recorder.counters()
        self.t0 = time.monotonic()
        self.end = None
        return self

    def __exit__(self, *exc):
        if self.end is None:
            self.end = time.monotonic()
        up, down, io = self.recorder.counters()
        self.result = {
            'seconds': self.end - self.t0,
            'uploaded_bytes': up - self.up0,
            'downloaded_bytes': down - self.down0,
            'io_written_bytes': io - self.io0,
        }
        self.result['bytes_moved'] = (self.result['uploaded_bytes'] +
                                      self.result['downloaded_bytes'] +
                                      self.result['io_written_bytes'])
        return False


def floor_xml(aio, instance_uuid: str) -> str:
    manager = bench_aio.compute_manager(aio, 'host-a1')
    instance = aio.db.instance_get(instance_uuid)
    disk = manager.storage.disk_info(instance_uuid)
    spec = manager.parts.domain_spec(instance, disk)
    return domain_xml.build_domain_xml(spec, aio.driver.virt_type)


def floor_api(conn, xml: str, recorder: Recorder) -> tuple[dict, dict]:
    with Timed(recorder) as up:
        dom = conn.defineXML(xml)
        dom.create()
    with Timed(recorder) as down:
        dom.destroy()
        try:
            dom.undefineFlags(_UNDEFINE_FLAGS)
        except libvirt.libvirtError:
            dom.undefine()  # the test driver rejects the NVRAM flag
    return up.result, down.result


def _virsh(uri: str, *args: str) -> None:
    subprocess.run(['virsh', '-q', '-c', uri, *args], check=True,
                   capture_output=True)


def _floor_virsh(uri: str, xml_file: str, name: str,
                 recorder: Recorder) -> tuple[dict, dict]:
    with Timed(recorder) as up:
        _virsh(uri, 'define', xml_file)
        _virsh(uri, 'start', name)
    with Timed(recorder) as down:
        _virsh(uri, 'destroy', name)
        _virsh(uri, 'undefine', name)
    return up.result, down.result


def _action(client, recorder, server_id, body, vm_state, timeout):
    recorder.drain(server_id)
    driver_before = recorder.driver_seconds(server_id)
    with Timed(recorder) as op:
        client.action(server_id, body)
        client.wait(server_id, _API_STATUS[vm_state], timeout=timeout,
                    interval=CLIENT_POLL_SECONDS)
        seen = time.monotonic()
        # The commit came first: the recorder has it queued already.
        op.end = recorder.wait(server_id, vm_state, timeout)
    op.result['client_seconds'] = seen - op.t0
    op.result['driver_seconds'] = (recorder.driver_seconds(server_id) -
                                   driver_before)
    return op.result


def prepare_instance(aio, client, image_id, size, scratch) -> str:
    server_id = client.boot('lat-%d' % size, image_id, FLAVOR_ID,
                            host='host-a1')
    client.wait(server_id, 'ACTIVE', timeout=300)
    client.action(server_id, {'os-stop': None})
    client.wait(server_id, 'SHUTOFF', timeout=120)
    disk = os.path.join(bench_aio.storage_dir(aio, 'group-a'), server_id,
                        'disk')
    started = time.monotonic()
    common.fill_qcow2_random(disk, size, scratch)
    common.log('  wrote %d MiB of random data into %s in %.1f s',
               size // common.MiB, disk, time.monotonic() - started)
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED_OFFLOADED', timeout=300)
    return server_id


def _remove_unused_bases(aio) -> None:
    for host in ('host-a1', 'host-b1'):
        manager = bench_aio.compute_manager(aio, host)
        manager.storage.remove_unused_bases(dry_run=False)


def _glance_store_bytes(glance) -> int | None:
    if glance is None:
        return None
    return common.allocated_bytes(glance.store_dir)


def _measure_size(aio, client, recorder, image_id, size, opts, glance,
                  conn, scratch, deadline) -> dict:
    uri = aio.driver.uri
    result = {'size_bytes': size, 'client_poll_seconds': CLIENT_POLL_SECONDS,
              'floor': [], 'floor_virsh': [],
              'partial_same_host': [], 'partial_other_host': [],
              'full': [], 'notes': []}
    server_id = prepare_instance(aio, client, image_id, size, scratch)
    disk = os.path.join(bench_aio.storage_dir(aio, 'group-a'), server_id,
                        'disk')
    before = os.stat(disk)
    result['disk_allocated_bytes'] = before.st_blocks * 512
    xml = floor_xml(aio, server_id)
    xml_file = os.path.join(scratch, 'floor-%s.xml' % server_id)
    with open(xml_file, 'w') as f:
        f.write(xml)
    name = domain_xml.domain_name(server_id)
    timeout = opts.op_timeout
    hosts_seen = []
    for run in range(opts.runs):
        up, down = floor_api(conn, xml, recorder)
        result['floor'].append({'unshelve': up, 'shelve': down})
        if shutil.which('virsh') and not uri.startswith('test:'):
            up, down = _floor_virsh(uri, xml_file, name, recorder)
            result['floor_virsh'].append({'unshelve': up, 'shelve': down})
        for kind in ('partial_same_host', 'partial_other_host'):
            shelved_host = aio.db.instance_get(server_id).system_metadata[
                names.SHELVED_HOST]
            if kind == 'partial_same_host':
                body = {'unshelve': None}
                wanted = shelved_host
            else:
                wanted = ('host-a2' if shelved_host == 'host-a1'
                          else 'host-a1')
                body = {'unshelve': {'host': wanted}}
            up = _action(client, recorder, server_id, body, 'active',
                         timeout)
            host = client.server(server_id)['OS-EXT-SRV-ATTR:host']
            hosts_seen.append((kind, shelved_host, host))
            if host != wanted:
                result['notes'].append('run %d %s: unshelved on %s, wanted '
                                       '%s' % (run, kind, host, wanted))
            down = _action(client, recorder, server_id, {'shelve': None},
                           'shelved_offloaded', timeout)
            result[kind].append({'unshelve': up, 'shelve': down,
                                 'from_host': shelved_host, 'host': host})
        common.log('  run %d: floor %.3f s, partial same %.3f s, other '
                   '%.3f s (unshelve)', run,
                   result['floor'][-1]['unshelve']['seconds'],
                   result['partial_same_host'][-1]['unshelve']['seconds'],
                   result['partial_other_host'][-1]['unshelve']['seconds'])
    after = os.stat(disk)
    result['retained_disk_unchanged'] = {
        'same_inode': before.st_ino == after.st_ino,
        'allocated_before': before.st_blocks * 512,
        'allocated_after': after.st_blocks * 512,
    }

    # -- full offload through the image service ---------------------------
    full_runs = opts.full_runs
    need = size * 3 + 2 * common.GiB
    free = common.free_bytes(scratch)
    if free < need:
        result['notes'].append(
            'full offload skipped: %.1f GiB free under %s, %.1f GiB needed '
            '(flattened copy, image store, downloaded and converted base)'
            % (free / common.GiB, scratch, need / common.GiB))
        full_runs = 0
    if full_runs:
        client.action(server_id, {'unshelve': None})
        client.wait(server_id, 'ACTIVE', timeout=timeout)
        CONF.set_override('offload_mode', 'full', group='shelve')
    try:
        run = 0
        while run < full_runs:
            try:
                cycle_result = _full_cycle(aio, client, recorder, server_id,
                                           glance, timeout)
            except Exception as e:  # recorded; the other results stand
                result['notes'].append('full offload run %d failed: %s' % (
                    run, str(e)[:300]))
                break
            down, up, cycle = cycle_result
            result['full'].append({'shelve': down, 'unshelve': up})
            run += 1
            common.log('  full run %d: shelve %.1f s (%d MiB up), unshelve '
                       '%.1f s (%d MiB down)', run - 1, down['seconds'],
                       down['uploaded_bytes'] // common.MiB, up['seconds'],
                       up['downloaded_bytes'] // common.MiB)
            left = deadline - time.monotonic()
            if run < full_runs and left < cycle * 1.2:
                if run < opts.min_full_runs and left > cycle:
                    continue
                result['notes'].append(
                    'full offload: %d of %d runs; the time budget left '
                    '(%.0f s) does not fit another %.0f s cycle'
                    % (run, full_runs, left, cycle))
                break
    finally:
        CONF.clear_override('offload_mode', group='shelve')
    with contextlib.suppress(Exception):
        status, _ = client.request('DELETE', '/servers/%s' % server_id)
        _wait_gone(client, server_id)
    _remove_unused_bases(aio)
    return result


def _full_cycle(aio, client, recorder, server_id, glance, timeout):
    """One full offload and unshelve; (shelve, unshelve, cycle seconds)."""
    started = time.monotonic()
    down = _action(client, recorder, server_id, {'shelve': None},
                   'shelved_offloaded', timeout)
    down['image_store_bytes'] = _glance_store_bytes(glance)
    sysmeta = aio.db.instance_get(server_id).system_metadata
    if not sysmeta.get(names.SHELVED_IMAGE_ID):
        raise RuntimeError('full offload of %s left no image: %s' % (
            server_id, sysmeta))
    up = _action(client, recorder, server_id, {'unshelve': None},
                 'active', timeout)
    up['host'] = client.server(server_id)['OS-EXT-SRV-ATTR:host']
    _remove_unused_bases(aio)
    return down, up, time.monotonic() - started


def _wait_gone(client, server_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = client.request('GET', '/servers/%s' % server_id)
        if status == 404:
            return
        time.sleep(0.1)


def _summarise(result: dict) -> dict:
    out = {}
    for kind in ('floor', 'floor_virsh', 'partial_same_host',
                 'partial_other_host', 'full'):
        runs = result[kind]
        out[kind] = {}
        for op in ('unshelve', 'shelve'):
            out[kind][op] = common.summary([r[op]['seconds'] for r in runs])
            out[kind][op]['bytes_moved'] = common.summary(
                [r[op]['bytes_moved'] for r in runs])
            out[kind][op]['client'] = common.summary(
                [r[op]['client_seconds'] for r in runs
                 if 'client_seconds' in r[op]])
            for key in ('uploaded_bytes', 'downloaded_bytes',
                        'io_written_bytes', 'driver_seconds'):
                out[kind][op][key] = common.summary(
                    [r[op][key] for r in runs if key in r[op]])['median']
    return out


def run(opts) -> dict:
    """Comparison 1; ``opts`` from run.py."""
    uri = opts.libvirt_uri
    if not libvirt_usable(uri):
        if not opts.quick:
            raise RuntimeError('libvirt at %s is not usable' % uri)
        uri = 'test:///default'
    deadline = time.monotonic() + opts.latency_budget
    work = common.make_work_dir(opts.work_dir, 'latency-')
    scratch = common.make_work_dir(work, 'scratch-')
    glance = None
    section = {'libvirt_uri': uri, 'runs': opts.runs,
               'full_runs_requested': opts.full_runs,
               'image_source': 'glance' if opts.glance else 'local',
               'shutdown_timeout': 0, 'sizes': []}
    try:
        overrides = bench_aio.base_overrides(
            os.path.join(work, 'state'), uri, HOSTS, vcpus=4,
            memory_mb=4096)
        # The conductor waits for the compute's unshelve with
        # rpc_response_timeout (default 60 s) and gives up after it: a full
        # unshelve that downloads 16 GiB takes longer, so with the default
        # it fails ("did not answer the unshelve within 60 s").
        overrides[(None, 'rpc_response_timeout')] = RPC_TIMEOUT
        section['rpc_response_timeout'] = RPC_TIMEOUT
        if opts.glance:
            glance = opts.start_glance(os.path.join(work, 'glance'))
            section['glance'] = glance.describe
            overrides.update({
                ('image', 'source'): 'glance',
                ('glance', 'auth_type'): 'none',
                ('glance', 'endpoint_override'): glance.server.endpoint,
                ('glance', 'num_retries'): 0})
        bench_aio.setup_logging(os.path.join(opts.log_dir, 'latency.log'))
        with bench_aio.running_aio(overrides) as aio:
            section['virt_type'] = aio.driver.virt_type
            client = common.Client(aio.url)
            disk_gb = max(1, -(-max(opts.sizes) // common.GiB) + 3)
            client.create_flavor(FLAVOR_ID, 'bench.lat', 256, 1, disk_gb)
            section['flavor'] = {'vcpus': 1, 'ram_mb': 256,
                                 'root_gb': disk_gb}
            image_id = client.images()[0]['id']
            recorder = Recorder(aio)
            conn = libvirt.open(uri)
            try:
                for size in opts.sizes:
                    common.log('latency: %d MiB of random data',
                               size // common.MiB)
                    measured = _measure_size(
                        aio, client, recorder, image_id, size, opts,
                        glance.server if glance else None, conn, scratch,
                        deadline)
                    measured['summary'] = _summarise(measured)
                    section['sizes'].append(measured)
                    if getattr(opts, 'fragment', None):
                        # Kept by run.py if a later size fails.
                        with open(opts.fragment + '.partial', 'w') as f:
                            json.dump(section, f)
            finally:
                conn.close()
    finally:
        if glance is not None:
            glance.stop()
        shutil.rmtree(work, ignore_errors=True)
    return section
