"""The database drops every connection of the services: they recover
without a restart.

The database server itself terminates the sessions of every service process
(PostgreSQL ``pg_terminate_backend``, MariaDB ``KILL``), between requests
and in the middle of a shelve. The pooled connections are dead; the next
request, flow step and heartbeat must find out, reconnect and go on: every
request is answered without a 5xx, the instance ends its operations as
asked, the compute host keeps reporting, and no process was restarted.
"""

import time

import pytest
import sqlalchemy as sa

from lifecycle.db import api as db_api

pytestmark = [pytest.mark.integration]

FLAVOR = {'id': 'db-64', 'name': 'db.64', 'ram': 64, 'vcpus': 1, 'disk': 1}


def kill_sessions(database_server, database_url: str) -> int:
    """Terminate every session on the deployment's database but ours;
    returns how many."""
    name = sa.engine.make_url(database_url).database
    admin = database_server._admin
    with admin.connect() as conn:
        if database_server.name == 'postgresql':
            return len(conn.execute(sa.text(
                'SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                'WHERE datname = :db AND pid <> pg_backend_pid()'),
                {'db': name}).all())
        ids = [row[0] for row in conn.execute(sa.text(
            'SELECT id FROM information_schema.processlist '
            'WHERE db = :db AND id <> CONNECTION_ID()'), {'db': name})]
        for session_id in ids:
            try:
                conn.exec_driver_sql('KILL %d' % session_id)
            except sa.exc.DBAPIError:
                pass  # ended by itself meanwhile
        return len(ids)


def heartbeat(db) -> object:
    with db.engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT last_seen_at FROM compute_nodes WHERE host = 'host-a1'")
        ).scalar()


def test_services_reconnect_after_the_database_drops_them(
        make_deployment, database_server, client_for):
    deployment = make_deployment(database_server.create(), 'test:///default',
                                 hosts={'host-a1': 'group-a'})
    client = client_for(deployment.url)
    assert client.request('POST', '/flavors', {'flavor': FLAVOR})[0] == 200
    db = db_api.Database(deployment.database_url)
    try:
        server_id = client.boot('db', flavor=FLAVOR['id'],
                                image=deployment.image_id)
        client.wait(server_id, 'ACTIVE')
        for _ in range(3):
            assert kill_sessions(database_server,
                                 deployment.database_url) > 0
            status, body = client.action(server_id, {'shelve': None})
            assert status == 202, body
            # ... and once more while the shelve runs.
            kill_sessions(database_server, deployment.database_url)
            client.wait(server_id, 'SHELVED_OFFLOADED', timeout=60)
            assert client.action(server_id, {'unshelve': None})[0] == 202
            client.wait(server_id, 'ACTIVE', timeout=60)
        kill_sessions(database_server, deployment.database_url)
        before = heartbeat(db)
        deadline = time.monotonic() + 30
        while heartbeat(db) == before:  # the compute reports again
            assert time.monotonic() < deadline, 'no heartbeat after kill'
            time.sleep(0.5)
        deployment.check_alive()
        assert 'fault' not in client.server(server_id)
    finally:
        db.dispose()
