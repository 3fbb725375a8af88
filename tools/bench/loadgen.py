"""The client side of the mass unshelve, in a process of its own so that
its threads never compete with the service for a Python interpreter (the
all-in-one runs in the benchmark's process).

    python -m tools.bench.loadgen URL IDS_FILE OUT_FILE TIMEOUT POLL

One thread per instance sends ``unshelve`` at the same moment (a
barrier); a poller reads ``GET /servers/detail?changes-since=`` every POLL
seconds (the whole list every FULL_LIST_EVERY polls) and records when each
instance is first seen ACTIVE with no task (or offloaded again with a
fault). Writes JSON: per instance the request time (wall
clock, to compare with the services' log lines) and the time it was seen
done, relative to the barrier's release; the poll durations.
"""

import concurrent.futures
import datetime
import json
import sys
import threading
import time

from tools.bench import common

# What the poller asks for again: a change's updated_at is taken before
# its transaction waits for the database's write lock, so it can commit
# after a poll that started later than it; a margin of seconds, and the
# whole list now and then, make sure no instance's end is missed (the
# burst would then wait for its timeout).
CHANGES_MARGIN = datetime.timedelta(seconds=10)
FULL_LIST_EVERY = 10


def unshelve_all(url: str, ids: list[str], timeout: float,
                 interval: float) -> dict:
    client = common.Client(url)
    sent: dict[str, float] = {}
    sent_wall: dict[str, float] = {}
    answered: dict[str, float] = {}
    seen: dict[str, float] = {}
    failed: dict[str, str] = {}
    errors: list[str] = []
    polls: list[float] = []
    barrier = threading.Barrier(len(ids) + 1)
    done = threading.Event()

    def unshelve(sid):
        barrier.wait()
        sent_wall[sid] = time.time()
        sent[sid] = time.monotonic()
        try:
            client.action(sid, {'unshelve': None})
        except Exception as e:
            errors.append('%s: %s' % (sid, e))
            failed[sid] = 'request refused: %s' % e
        answered[sid] = time.monotonic()

    def poll():
        since = None
        count = 0
        while not done.is_set():
            t0 = time.monotonic()
            started = datetime.datetime.now(datetime.UTC)
            try:
                detail = client.servers_detail(
                    None if count % FULL_LIST_EVERY == 0 else
                    (since - CHANGES_MARGIN).isoformat())
            except Exception as e:
                errors.append('poll: %s' % e)
                continue
            since = started
            count += 1
            now = time.monotonic()
            polls.append(now - t0)
            for s in detail:
                sid = s['id']
                if sid not in sent or sid in seen or sid in failed:
                    continue
                if s['OS-EXT-STS:task_state'] is not None:
                    continue
                if s['status'] == 'ACTIVE':
                    seen[sid] = now
                elif s['status'] in ('SHELVED_OFFLOADED', 'ERROR') and \
                        s.get('fault'):
                    failed[sid] = s['fault'].get('message', '')
            if len(seen) + len(failed) >= len(ids):
                done.set()
            done.wait(max(0.0, interval - (time.monotonic() - t0)))

    poller = threading.Thread(target=poll, daemon=True)
    with concurrent.futures.ThreadPoolExecutor(len(ids)) as pool:
        futures = [pool.submit(unshelve, sid) for sid in ids]
        barrier.wait()
        start = time.monotonic()
        poller.start()
        for f in futures:
            f.result()
    requests_done = time.monotonic() - start
    done.wait(timeout)
    done.set()
    poller.join()
    return {
        'sent': {k: v - start for k, v in sent.items()},
        'sent_wall': sent_wall,
        'answered': {k: v - start for k, v in answered.items()},
        'seen': {k: v - start for k, v in seen.items()},
        'failed': failed,
        'errors': errors[:20],
        'polls': polls,
        'requests_seconds': requests_done,
    }


def main(argv: list[str]) -> int:
    url, ids_file, out_file, timeout, interval = argv
    with open(ids_file) as f:
        ids = json.load(f)
    result = unshelve_all(url, ids, float(timeout), float(interval))
    with open(out_file, 'w') as f:
        json.dump(result, f)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
