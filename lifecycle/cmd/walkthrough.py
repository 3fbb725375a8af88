"""``lifecycle-walkthrough``: boot → shelve → unshelve → delete against a
running ``lifecycle-aio`` through its REST API, printing each step's
duration and the disk data it wrote.

"Disk data written" is measured, not assumed: the blocks allocated under the
all-in-one's instance storage and image directory before and after the step.
A partial offload keeps the root disk file in place, so shelve and unshelve
write nothing; the inode of the root disk is shown to prove it is the same
file.

Exit codes: 0 the walkthrough completed, 1 a step failed, 2 the API did not
answer.
"""

import glob
import json
import os
import sys
import time
import urllib.error
import urllib.request

from oslo_config import cfg

from lifecycle import storage_groups
from lifecycle.conf import CONF
from lifecycle import names

MICROVERSION = 'compute 2.91'


class StepFailed(Exception):
    pass


class Api:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip('/')

    def call(self, method: str, path: str, body=None):
        request = urllib.request.Request(
            self.url + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={'Content-Type': 'application/json',
                     'OpenStack-API-Version': MICROVERSION})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = response.read()
                return response.status, json.loads(payload) if payload else {}
        except urllib.error.HTTPError as e:
            payload = e.read()
            return e.code, json.loads(payload) if payload else {}

    def wait_status(self, server_id: str, status: str,
                    timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, body = self.call('GET', '/servers/%s' % server_id)
            if code == 404 and status == 'DELETED':
                return {}
            server = body.get('server', {})
            if server.get('status') == 'ERROR' and status != 'ERROR':
                raise StepFailed('server went to ERROR: %s' %
                                 server.get('fault', {}).get('message'))
            if (server.get('status') == status and
                    server.get('OS-EXT-STS:task_state') is None):
                return server
            time.sleep(0.1)
        raise StepFailed('server %s did not reach %s in %d s' %
                         (server_id, status, timeout))


def allocated_bytes(paths: list[str]) -> int:
    return sum(storage_groups.allocated_bytes(top, top) for top in paths)


def _human(size: int) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if abs(size) < 1024 or unit == 'GiB':
            return '%d %s' % (size, unit) if unit == 'B' else \
                '%.1f %s' % (size, unit)
        size /= 1024
    return str(size)


def run(api: Api, watched: list[str], storage: str) -> None:
    code, body = api.call('GET', '/images')
    if code != 200 or not body.get('images'):
        raise StepFailed('no image to boot from (GET /images: %s)' % code)
    image = body['images'][0]
    print('image   %s (%s)' % (image['name'], image['id']))

    def step(name: str, action, expect: str) -> dict:
        before = allocated_bytes(watched)
        started = time.monotonic()
        action()
        server = api.wait_status(server_id, expect)
        elapsed = time.monotonic() - started
        written = allocated_bytes(watched) - before
        disks = glob.glob(os.path.join(storage, '*', server_id, 'disk'))
        inode = os.stat(disks[0]).st_ino if disks else None
        print('%-9s %-18s %7.2f s   disk data written: %-10s root disk '
              'inode: %s' % (name, expect, elapsed, _human(max(written, 0)),
                             inode if inode else '-'), flush=True)
        return server

    server_id = None

    def boot():
        nonlocal server_id
        code, body = api.call('POST', '/servers', {'server': {
            'name': 'walkthrough', 'imageRef': image['id'],
            'flavorRef': '1', 'networks': 'none'}})
        if code != 202:
            raise StepFailed('boot refused: %s %s' % (code, body))
        server_id = body['server']['id']

    def action(body):
        def send():
            code, answer = api.call('POST', '/servers/%s/action' % server_id,
                                    body)
            if code != 202:
                raise StepFailed('%s refused: %s %s' % (body, code, answer))
        return send

    def delete():
        code, answer = api.call('DELETE', '/servers/%s' % server_id)
        if code != 204:
            raise StepFailed('delete refused: %s %s' % (code, answer))

    server = step('boot', boot, 'ACTIVE')
    print('          on host %s, domain UUID = server id %s' % (
        server['OS-EXT-SRV-ATTR:host'], server_id))
    server = step('shelve', action({'shelve': None}), 'SHELVED_OFFLOADED')
    print('          (shelve waits up to [DEFAULT] shutdown_timeout = %d s '
          'for a clean power-off, as Nova does;\n           a guest without '
          'an OS never answers and is then powered off hard)' %
          CONF.shutdown_timeout)
    print('          retained disk: %s' % json.dumps(
        server.get(names.API_RETAINED_DISK)))
    server = step('unshelve', action({'unshelve': None}), 'ACTIVE')
    print('          back on host %s' % server['OS-EXT-SRV-ATTR:host'])
    step('delete', delete, 'DELETED')


def main(argv: list[str] | None = None) -> int:
    CONF.register_cli_opt(cfg.StrOpt(
        'endpoint', help='Compute endpoint; default from [api] host/port.'))
    CONF(sys.argv[1:] if argv is None else argv, project='lifecycle')
    url = CONF.endpoint or 'http://%s:%d/v2.1' % (CONF.api.host,
                                                 CONF.api.port)
    api = Api(url)
    deadline = time.monotonic() + 60
    while True:
        try:
            if api.call('GET', '/')[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            print('No compute API answers at %s' % url, file=sys.stderr)
            return 2
        time.sleep(0.5)
    state_dir = CONF.aio.state_dir
    storage = os.path.join(state_dir, 'storage')
    images = CONF.image.local_dir or os.path.join(state_dir, 'images')
    print('compute API at %s' % url)
    try:
        run(api, [storage, images], storage)
    except StepFailed as e:
        print('walkthrough failed: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
