"""RabbitMQ restarted in the middle of 50 concurrent operations.

The separate services (API, conductor, four computes on the libvirt test
driver) run on RabbitMQ and PostgreSQL. 25 instances are shelved and 25
others unshelved at once, and the RabbitMQ application is stopped and
started again (``rabbitmqctl stop_app``/``start_app``: the node stays up,
every connection, queue and message in flight is gone) while they run.
Within the stuck-task timeout every operation has either finished or ended
with a fault, no instance keeps a task, no host is over capacity, host
usage equals the claims held, and the services -- never restarted --
serve the next requests.

It restarts the shared RabbitMQ of this machine: other tests that use it
at the same moment see the outage too (they reconnect).
"""

import shutil
import subprocess
import time
from concurrent import futures

import pytest
import sqlalchemy as sa

from lifecycle.db import api as db_api
from tests.conftest import require
from tests.harness.deployment import DatabaseServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTS = {'host-a1': 'group-a', 'host-a2': 'group-a',
         'host-b1': 'group-b', 'host-b2': 'group-b'}
FLAVOR = {'id': 'rr-64', 'name': 'rr.64', 'ram': 64, 'vcpus': 1, 'disk': 1}
COUNT = 50
OUTAGE = 5
# Short for the test; it must still exceed how long a request can wait in a
# queue for a free worker on this (loaded, 2-core) machine.
STUCK_TIMEOUT = 30
CONDUCTOR_CONF = {'DEFAULT': {'host': 'conductor-1',
                              'rpc_response_timeout': 15,
                              'stuck_task_timeout': STUCK_TIMEOUT,
                              'stuck_task_interval': 2}}


def rabbitmqctl(*args: str) -> None:
    result = subprocess.run(['rabbitmqctl', *args], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def cloud(make_deployment, client_for):
    require(shutil.which('rabbitmqctl') is not None,
            'rabbitmqctl (to restart RabbitMQ)')
    server = DatabaseServer('postgresql')
    deployment = make_deployment(server.create(), 'test:///default',
                                 hosts=HOSTS, host_vcpus=32,
                                 host_memory_mb=64 * 20)
    client = client_for(deployment.url)
    status, body = client.request('POST', '/flavors', {'flavor': FLAVOR})
    assert status == 200, (status, body)
    db = db_api.Database(deployment.database_url)
    yield deployment, client, db
    db.dispose()
    server.drop_all()


def _parallel(calls):
    with futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def _settled(db, ids, timeout: float) -> dict:
    """{id: instance} once none of them has a task (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        instances = {i: db.instance_get(i) for i in ids}
        busy = {i: (x.vm_state, x.task_state)
                for i, x in instances.items() if x.task_state is not None}
        if not busy:
            return instances
        assert time.monotonic() < deadline, 'stuck: %s' % busy
        time.sleep(0.5)


def test_operations_survive_a_rabbitmq_restart(cloud):
    deployment, client, db = cloud
    ids = _parallel([lambda n=n: client.boot('rr-%d' % n, flavor=FLAVOR['id'],
                                             image=deployment.image_id)
                     for n in range(COUNT)])
    for server_id in ids:
        client.wait(server_id, 'ACTIVE', timeout=120)
    to_unshelve, to_shelve = ids[:COUNT // 2], ids[COUNT // 2:]
    for server_id in to_unshelve:
        assert client.action(server_id, {'shelve': None})[0] == 202
    for server_id in to_unshelve:
        client.wait(server_id, 'SHELVED_OFFLOADED', timeout=120)
    # Now the conductor that ends stuck tasks soon (the setup's 50 builds
    # could wait longer than that in its queue on a loaded machine).
    deployment.processes.pop('conductor').stop()
    deployment.spawn('conductor', 'conductor', CONDUCTOR_CONF).wait_ready()

    requests = ([lambda s=s: client.action(s, {'unshelve': None})
                 for s in to_unshelve] +
                [lambda s=s: client.action(s, {'shelve': None})
                 for s in to_shelve])
    with futures.ThreadPoolExecutor(COUNT + 1) as pool:
        answers = [pool.submit(call) for call in requests]
        time.sleep(0.3)  # some requests in flight, some still coming
        rabbitmqctl('stop_app')
        time.sleep(OUTAGE)
        rabbitmqctl('start_app')
        codes = [answer.result()[0] for answer in answers]
    # Accepted, or refused cleanly (never a 5xx, never left hanging).
    assert all(code in (202, 409, 503) for code in codes), codes

    instances = _settled(db, ids, STUCK_TIMEOUT + 60)
    deployment.check_alive()
    outcomes = {'done': 0, 'fault': 0}
    for server_id in to_unshelve:
        instance = instances[server_id]
        if instance.vm_state == 'active':
            outcomes['done'] += 1
        else:
            assert instance.vm_state == 'shelved_offloaded', instance.vm_state
            assert instance.faults, server_id
            outcomes['fault'] += 1
    for server_id in to_shelve:
        instance = instances[server_id]
        if instance.vm_state == 'shelved_offloaded':
            outcomes['done'] += 1
        else:
            assert instance.vm_state in ('active', 'shelved'), (
                instance.vm_state)
            assert instance.faults, server_id
            outcomes['fault'] += 1
    print('after the RabbitMQ restart: %(done)d finished, %(fault)d ended '
          'with a fault' % outcomes)

    # Claims: usage is what the instances hold, nobody over capacity.
    with db.engine.connect() as conn:
        usage = dict(conn.execute(sa.text(
            'SELECT host, memory_mb_used FROM compute_nodes')).all())
        memory = dict(conn.execute(sa.text(
            'SELECT host, memory_mb FROM compute_nodes')).all())
    held = {host: 0 for host in HOSTS}
    for instance in instances.values():
        if instance.claimed_host:
            held[instance.claimed_host] += instance.memory_mb
    assert usage == held
    assert all(usage[h] <= memory[h] for h in HOSTS)

    # The services recovered by themselves: the next requests work.
    for server_id in ids[:2] + ids[-2:]:
        instance = db.instance_get(server_id)
        action = ('unshelve' if instance.vm_state == 'shelved_offloaded'
                  else 'shelve')
        assert client.action(server_id, {action: None})[0] == 202
        client.wait(server_id, 'ACTIVE' if action == 'unshelve'
                    else 'SHELVED_OFFLOADED', timeout=120)
    deployment.check_alive()
