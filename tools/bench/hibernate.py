"""Hibernate-shelve against the other ways back, side by side in one run.

For each guest RAM size, the counting guest (tests/harness/guest.py)
is booted through the API by direct kernel boot and then, in turn:

* ``hibernate``: ``{"shelve": {"lifecycle:keep_memory": true}}`` and an
  unshelve on the other host of the group, until the guest prints its next
  counter line (resumed: same boot id);
* ``cold``: a plain shelve (partial offload) and unshelve, until the guest's
  first counter line after its boot;
* ``full``: ``[shelve] offload_mode = full`` and unshelve from the image,
  until the first counter line.

Reported per case: shelve time, unshelve time to the counter line, bytes
the shelve left on storage (state file, or image), and for hibernate the
state file against the guest's RAM. Writes JSON and a Markdown table.

    python -m tools.bench.hibernate --out doc/benchmarks/hibernate
"""

import argparse
import json
import os
import sys
import tempfile
import time

from lifecycle.conf import CONF
from lifecycle.image import local
from tests.harness import guest as guest_harness
from tools.bench import aio as bench_aio
from tools.bench import common

URI = 'qemu:///system'
GROUP = 'group-a'
MiB = 1024 * 1024


def _console_line(server_id: str, after: float, timeout: float = 300,
                  boot: str | None = None) -> tuple[float, tuple]:
    """Seconds from ``after`` to the first counter line (of boot ``boot``
    when given), and that line."""
    console = guest_harness.SerialConsole(URI, server_id)
    try:
        match = console.wait_for(guest_harness.COUNT_RE, timeout)
        line = (int(match.group(1)), float(match.group(2)), match.group(3))
        return time.monotonic() - after, line
    finally:
        console.close()


def _image(aio, guest, work: str) -> str:
    kernel = aio.images.create('bench-kernel', guest.kernel, 'raw')
    ramdisk = aio.images.create('bench-ramdisk', guest.initrd, 'raw')
    root = os.path.join(work, 'root.qcow2')
    local.make_blank_image(root, 64)
    return aio.images.create(
        'bench-counting', root, 'qcow2',
        properties={'kernel_id': kernel['id'], 'ramdisk_id': ramdisk['id'],
                    'os_command_line': guest.cmdline})['id']


def _case(aio, client, mode: str, image: str, flavor: str,
          ram_mb: int) -> dict:
    CONF.set_override('offload_mode', 'full' if mode == 'full' else
                      'partial', group='shelve')
    server_id = client.boot('bench-%s' % mode, image, flavor, host='host-a1')
    client.wait(server_id, 'ACTIVE')
    _, before = _console_line(server_id, time.monotonic())
    time.sleep(2)
    body = ({'shelve': {'lifecycle:keep_memory': True}} if mode == 'hibernate'
            else {'shelve': None})
    t0 = time.monotonic()
    client.action(server_id, body)
    server = client.wait(server_id, 'SHELVED_OFFLOADED')
    shelve_s = time.monotonic() - t0
    inst_dir = os.path.join(bench_aio.storage_dir(aio, GROUP), server_id)
    state = os.path.join(inst_dir, 'memory.save')
    state_bytes = os.path.getsize(state) if os.path.exists(state) else 0
    image_bytes = 0
    image_id = aio.db.instance_get(server_id).system_metadata.get(
        'shelved_image_id')
    if image_id:
        image_bytes = aio.images.get(image_id).get('size') or 0
    t0 = time.monotonic()
    client.action(server_id, {'unshelve': {'host': 'host-a2'}}
                  if mode != 'full' else {'unshelve': None})
    client.wait(server_id, 'ACTIVE')
    unshelve_s, after = _console_line(server_id, t0)
    result = {
        'mode': mode, 'ram_mb': ram_mb, 'shelve_s': round(shelve_s, 2),
        'unshelve_to_counter_s': round(unshelve_s, 2),
        'state_file_bytes': state_bytes, 'image_bytes': image_bytes,
        'state_vs_ram': round(state_bytes / (ram_mb * MiB), 3),
        'resumed': after[2] == before[2],
        'marker_seen': server.get('lifecycle:memory_state') is not None,
    }
    client.request('DELETE', '/servers/%s' % server_id)
    return result


def _markdown(results: list[dict], virt_type: str) -> str:
    lines = ['# Hibernate-shelve vs cold partial unshelve vs full offload',
             '', 'Counting guest, direct kernel boot, %s, one run '
             '(`python -m tools.bench.hibernate`).' % virt_type, '',
             '| RAM | mode | shelve (s) | unshelve to counter (s) | '
             'state file | image | state/RAM | resumed |',
             '|---|---|---|---|---|---|---|---|']
    for r in results:
        lines.append('| %d MiB | %s | %.2f | %.2f | %.1f MiB | %.1f MiB | '
                     '%.3f | %s |' % (
                         r['ram_mb'], r['mode'], r['shelve_s'],
                         r['unshelve_to_counter_s'],
                         r['state_file_bytes'] / MiB, r['image_bytes'] / MiB,
                         r['state_vs_ram'], 'yes' if r['resumed'] else 'no'))
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='doc/benchmarks/hibernate')
    parser.add_argument('--ram', type=int, nargs='+', default=[256, 1024])
    args = parser.parse_args(argv)
    path, why = guest_harness.build()
    if path is None:
        print('counting guest: %s' % why, file=sys.stderr)
        return 1
    kernel = os.path.join(path, 'vmlinuz')
    initrd = os.path.join(path, 'initrd.img')
    kvm, _ = guest_harness.kvm_boots(kernel, initrd)
    guest = guest_harness.CountingGuest(kernel, initrd, guest_harness.CMDLINE,
                                        'kvm' if kvm else 'qemu', '')
    work = tempfile.mkdtemp(prefix='bench-hibernate-', dir='/var/tmp')
    os.chmod(work, 0o755)
    bench_aio.setup_logging(os.path.join(work, 'service.log'))
    overrides = bench_aio.base_overrides(
        work, URI, ['host-a1:group-a', 'host-a2:group-a'], vcpus=4,
        memory_mb=8192)
    overrides[('libvirt', 'virt_type')] = guest.virt_type
    overrides[('image', 'source')] = 'local'
    results = []
    with bench_aio.running_aio(overrides) as aio:
        client = common.Client(aio.url)
        image = _image(aio, guest, work)
        for ram in args.ram:
            flavor = 'hib-%d' % ram
            client.create_flavor(flavor, 'hib.%d' % ram, ram, 1, 1)
            for mode in ('hibernate', 'cold', 'full'):
                common.log('%s, %d MiB', mode, ram)
                results.append(_case(aio, client, mode, image, flavor, ram))
        CONF.clear_override('offload_mode', group='shelve')
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    with open(args.out + '.json', 'w') as f:
        json.dump({'virt_type': guest.virt_type, 'results': results}, f,
                  indent=2)
    with open(args.out + '.md', 'w') as f:
        f.write(_markdown(results, guest.virt_type))
    print(_markdown(results, guest.virt_type))
    return 0


if __name__ == '__main__':
    sys.exit(main())
