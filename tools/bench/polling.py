"""What a polling client costs the unshelve it waits for.

``python -m tools.bench.polling [--rounds 10] [--interval 0.02]
[--libvirt-uri qemu:///system] [--json FILE]``

The latency section times an unshelve "as the client saw it" with a client
polling ``GET /servers/{id}`` every 20 ms, and divides it by a bare define +
create measured with nothing else running. This measures the floor itself
under the same polling: one all-in-one with one shelved 256 MiB instance,
then, in shuffled order each round, the bare define + create of its domain
XML (as the latency section's floor) while

* ``none``: nothing else runs;
* ``sleeping``: a thread of this process wakes every interval and does
  nothing (the cost of the wake-ups alone);
* ``polling``: a thread polls ``GET /servers/{id}`` of the instance every
  interval, as the latency section's client does.

Medians and every run are printed (and written to ``--json``). The machine
should be otherwise idle; the load average is printed with them.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import threading
import time

import libvirt

from tools.bench import aio as bench_aio
from tools.bench import common
from tools.bench import latency

KINDS = ('none', 'sleeping', 'polling')


def _poller(stop: threading.Event, interval: float, call) -> None:
    while not stop.is_set():
        if call is not None:
            call()
        time.sleep(interval)


def _floor_while(conn, xml: str, recorder, kind: str, interval: float,
                 get) -> float:
    stop = threading.Event()
    thread = None
    if kind != 'none':
        thread = threading.Thread(target=_poller, args=(
            stop, interval, get if kind == 'polling' else None))
        thread.start()
        time.sleep(5 * interval)  # in its rhythm before the floor starts
    try:
        up, _ = latency.floor_api(conn, xml, recorder)
    finally:
        stop.set()
        if thread is not None:
            thread.join()
    return up['seconds']


def measure(uri: str, rounds: int, interval: float, work_dir: str) -> dict:
    work = common.make_work_dir(work_dir, 'polling-')
    scratch = common.make_work_dir(work, 'scratch-')
    runs: dict[str, list[float]] = {kind: [] for kind in KINDS}
    load_before = os.getloadavg()
    try:
        overrides = bench_aio.base_overrides(
            os.path.join(work, 'state'), uri, latency.HOSTS, vcpus=4,
            memory_mb=4096)
        bench_aio.setup_logging(os.path.join(work, 'polling.log'))
        with bench_aio.running_aio(overrides) as aio:
            client = common.Client(aio.url)
            client.create_flavor(latency.FLAVOR_ID, 'bench.lat', 256, 1, 1)
            image_id = client.images()[0]['id']
            recorder = latency.Recorder(aio)
            server_id = latency.prepare_instance(
                aio, client, image_id, 256 * common.MiB, scratch)
            xml = latency.floor_xml(aio, server_id)
            conn = libvirt.open(uri)
            try:
                for _ in range(rounds):
                    for kind in random.sample(KINDS, len(KINDS)):
                        runs[kind].append(_floor_while(
                            conn, xml, recorder, kind, interval,
                            lambda: client.server(server_id)))
            finally:
                conn.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {'libvirt_uri': uri, 'interval_seconds': interval,
            'rounds': rounds, 'load_average_before': load_before,
            'load_average_after': os.getloadavg(),
            'floor_seconds': {kind: {'median': statistics.median(values),
                                     'values': values}
                              for kind, values in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--interval', type=float,
                        default=latency.CLIENT_POLL_SECONDS)
    parser.add_argument('--libvirt-uri', default='qemu:///system')
    parser.add_argument('--work-dir', default='/var/tmp')
    parser.add_argument('--json', help='also write the results here')
    opts = parser.parse_args()
    result = measure(opts.libvirt_uri, opts.rounds, opts.interval,
                     opts.work_dir)
    none = result['floor_seconds']['none']['median']
    for kind, floor in result['floor_seconds'].items():
        print('%-9s median %.3f s (%+.0f ms)  runs %s' % (
            kind, floor['median'], 1000 * (floor['median'] - none),
            ' '.join('%.3f' % v for v in floor['values'])))
    print('load average %.2f -> %.2f' % (
        result['load_average_before'][0], result['load_average_after'][0]))
    if opts.json:
        with open(opts.json, 'w') as f:
            json.dump(result, f, indent=1, sort_keys=True)


if __name__ == '__main__':
    main()
