"""Comparison 4: storage efficiency of 100 shelved instances.

An image with ``base`` MiB of random data (standing in for an OS image) is
registered; ``instances`` instances boot from it on the two hosts of one
storage group (qcow2 overlays over the group's shared raw base, libvirt test
driver: the disk files are real, only the guests are not), are shelved
(partial offload), and ``written`` MiB of random data are written into each
retained overlay (what the guest changed). Measured: the allocated bytes on
the group's shared storage (instance directories and ``_base``).

Then every instance is escalated to a full offload (``[shelve]
offload_mode = full`` and ``shelveOffload`` of the offloaded instance): the
overlay is flattened and uploaded, the retained disk freed. Measured: the
bytes the shelved images add to the image store (Glance's file store, or
the local image directory in ``--quick``), and what remains on the shared
storage.
"""

import concurrent.futures
import os
import shutil
import tempfile
import time

from lifecycle.conf import CONF
from lifecycle import names
from tools.bench import aio as bench_aio
from tools.bench import common

FLAVOR = ('bench-sto', 'bench.sto', 64, 1, 1)
HOSTS = ['host-a1:group-a', 'host-a2:group-a']


def _image_with_data(path: str, size: int, scratch: str) -> None:
    """A qcow2 image holding ``size`` bytes of random data."""
    import subprocess
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', path,
                    str(max(size, 64 * common.MiB))], check=True,
                   capture_output=True)
    common.fill_qcow2_random(path, size, scratch)


def _parallel(fn, items, workers=16):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def _wait(client, ids, done, timeout):
    deadline = time.monotonic() + timeout
    while True:
        servers = {s['id']: s for s in client.servers_detail()
                   if s['id'] in ids}
        if len(servers) == len(ids) and all(done(s)
                                            for s in servers.values()):
            return servers
        if time.monotonic() > deadline:
            raise RuntimeError('storage: timed out waiting')
        time.sleep(0.5)


def _escalate(client, ids, opts) -> int:
    """Full offload of every instance, ``storage_upload_parallel`` at a
    time (a hundred uploads at once make a one-worker Glance reset
    connections; the instance then stays partially offloaded with a fault,
    and is retried here). Returns how many uploads failed and were
    retried."""
    retried = 0
    pending = list(ids)
    attempts = {sid: 0 for sid in ids}
    step = opts.storage_upload_parallel
    while pending:
        wave, pending = pending[:step], pending[step:]
        _parallel(lambda sid: client.action(sid, {'shelveOffload': None}),
                  wave, workers=step)
        servers = _wait(client, set(wave),
                        lambda s: s['OS-EXT-STS:task_state'] is None,
                        opts.op_timeout)
        for sid, server in servers.items():
            if server.get(names.API_RETAINED_DISK):
                attempts[sid] += 1
                if attempts[sid] > 3:
                    raise RuntimeError('full offload of %s failed 3 times: '
                                       '%s' % (sid, server.get('fault')))
                retried += 1
                pending.append(sid)
    return retried


def _glance_errors(glance) -> dict:
    """What Glance's own log says about the uploads it failed."""
    counts = {'error_lines': 0, 'database_is_locked': 0}
    try:
        with open(glance.server.log_file, errors='replace') as f:
            for line in f:
                if ' ERROR ' in line:
                    counts['error_lines'] += 1
                if 'database is locked' in line:
                    counts['database_is_locked'] += 1
    except FileNotFoundError:
        pass
    return counts


def run(opts) -> dict:
    work = common.make_work_dir(opts.work_dir, 'storage-')
    scratch = common.make_work_dir(work, 'scratch-')
    glance = None
    instances = opts.storage_instances
    written = opts.storage_written
    base = opts.storage_base
    section = {'instances': instances, 'written_bytes_per_instance': written,
               'image_data_bytes': base,
               'image_source': 'glance' if opts.glance else 'local'}
    try:
        overrides = bench_aio.base_overrides(
            os.path.join(work, 'state'), 'test:///default', HOSTS,
            vcpus=64, memory_mb=64 * instances)
        if opts.glance:
            glance = opts.start_glance(os.path.join(work, 'glance'))
            overrides.update({
                ('image', 'source'): 'glance',
                ('glance', 'auth_type'): 'none',
                ('glance', 'endpoint_override'): glance.server.endpoint,
                ('glance', 'num_retries'): 0})
        bench_aio.setup_logging(os.path.join(opts.log_dir, 'storage.log'))
        with bench_aio.running_aio(overrides) as aio:
            client = common.Client(aio.url)
            client.create_flavor(*FLAVOR)
            fd, image_file = tempfile.mkstemp(suffix='.qcow2', dir=scratch)
            os.close(fd)
            _image_with_data(image_file, base, scratch)
            image = aio.images.create('bench-os', image_file)
            os.unlink(image_file)
            store = (glance.server.store_dir if glance else
                     os.path.join(aio.state_dir, 'images'))
            store_before = common.allocated_bytes(store)
            group_dir = bench_aio.storage_dir(aio, 'group-a')

            ids = _parallel(lambda i: client.boot(
                'sto-%03d' % i, image['id'], FLAVOR[0]), range(instances))
            _wait(client, set(ids), lambda s: s['status'] == 'ACTIVE' and
                  s['OS-EXT-STS:task_state'] is None, opts.op_timeout)
            _parallel(lambda sid: client.action(sid, {'shelve': None}), ids)
            _wait(client, set(ids),
                  lambda s: s['status'] == 'SHELVED_OFFLOADED' and
                  s['OS-EXT-STS:task_state'] is None, opts.op_timeout)

            def write(sid):
                disk = os.path.join(group_dir, sid, 'disk')
                common.fill_qcow2_random(disk, written, scratch,
                                         offset=max(base, 64 * common.MiB))
            started = time.monotonic()
            _parallel(write, ids, workers=4)
            common.log('  wrote %d MiB into each of %d overlays in %.1f s',
                       written // common.MiB, instances,
                       time.monotonic() - started)
            base_dir = os.path.join(group_dir, '_base')
            base_bytes = common.allocated_bytes(base_dir)
            inst_bytes = sum(common.allocated_bytes(
                os.path.join(group_dir, sid)) for sid in ids)
            section['partial'] = {
                'instance_dirs_bytes': inst_bytes,
                'base_bytes': base_bytes,
                'shared_storage_bytes': inst_bytes + base_bytes,
                'per_instance_bytes': inst_bytes / instances,
            }
            common.log('  partial: %.1f MiB on shared storage (%.1f MiB '
                       'overlays + %.1f MiB base)',
                       (inst_bytes + base_bytes) / common.MiB,
                       inst_bytes / common.MiB, base_bytes / common.MiB)

            CONF.set_override('offload_mode', 'full', group='shelve')
            try:
                started = time.monotonic()
                failed_uploads = _escalate(client, ids, opts)
                escalate = time.monotonic() - started
            finally:
                CONF.clear_override('offload_mode', group='shelve')
            images = [aio.db.instance_get(sid).system_metadata.get(
                names.SHELVED_IMAGE_ID) for sid in ids]
            missing = sum(1 for i in images if not i)
            store_bytes = common.allocated_bytes(store) - store_before
            left = common.allocated_bytes(group_dir)
            section['full'] = {
                'image_store_bytes': store_bytes,
                'per_instance_bytes': store_bytes / instances,
                'shared_storage_left_bytes': left,
                'instances_without_image': missing,
                'escalation_seconds': escalate,
                'upload_parallelism': opts.storage_upload_parallel,
                'failed_uploads_retried': failed_uploads,
            }
            if glance is not None:
                section['full']['glance_log'] = _glance_errors(glance)
            section['ratio_full_to_partial'] = common.ratio(
                store_bytes, inst_bytes + base_bytes)
            common.log('  full: %.1f MiB in the image store (%.0f s to '
                       'upload), %.1f MiB left on shared storage (base)',
                       store_bytes / common.MiB, escalate,
                       left / common.MiB)
    finally:
        if glance is not None:
            glance.stop()
        shutil.rmtree(work, ignore_errors=True)
    return section
