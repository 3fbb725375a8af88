"""Alembic migrations: they apply on SQLite, PostgreSQL and MariaDB and
produce exactly the schema the models describe."""

import uuid

import pytest
import sqlalchemy as sa
from alembic import autogenerate
from alembic.migration import MigrationContext

from lifecycle.db import api as db_api
from lifecycle.db import migration
from lifecycle.db import models
from tests.conftest import require
from tests.conftest import tcp_reachable

SERVERS = {
    'postgresql': ('127.0.0.1', 5432,
                   'postgresql+psycopg2://postgres@127.0.0.1:5432/%s'),
    'mysql': ('127.0.0.1', 3306, 'mysql+pymysql://root@127.0.0.1:3306/%s'),
}


@pytest.fixture(params=['sqlite', 'postgresql', 'mysql'])
def database(request, tmp_path):
    """A fresh, empty database on each backend; dropped afterwards."""
    if request.param == 'sqlite':
        db = db_api.Database('sqlite:///%s' % (tmp_path / 'm.sqlite'))
        yield db
        db.dispose()
        return
    host, port, url = SERVERS[request.param]
    require(tcp_reachable(host, port),
            '%s at %s:%d' % (request.param, host, port))
    name = 'lifecycle_mig_%s' % uuid.uuid4().hex[:10]
    admin_db = 'postgres' if request.param == 'postgresql' else ''
    admin = sa.create_engine(url % admin_db, isolation_level='AUTOCOMMIT')
    with admin.connect() as conn:
        conn.exec_driver_sql('CREATE DATABASE %s' % name)
    db = db_api.Database(url % name)
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql('DROP DATABASE %s' % name)
        admin.dispose()


def _not_a_primary_key_unique(obj, name, type_, reflected, compare_to):
    # TaskFlow's tables declare their primary keys unique as well;
    # PostgreSQL keeps only the primary key, which is the same constraint.
    return not (type_ == 'unique_constraint' and not reflected and
                all(column.primary_key for column in obj.columns))


def test_sync_reaches_head_and_matches_models(database):
    assert migration.current_version(database) is None
    migration.sync(database)
    assert migration.current_version(database) == migration.head_version()
    with database.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={'compare_type': True,
                        'include_object': _not_a_primary_key_unique})
        diff = autogenerate.compare_metadata(context, models.Base.metadata)
    assert diff == [], 'models and migrations disagree: %s' % diff


def test_sync_is_idempotent(database):
    migration.sync(database)
    migration.sync(database)
    assert migration.current_version(database) == migration.head_version()


def test_schema_accepts_the_values_the_service_writes(database):
    """Long system-metadata values and unicode names fit on every backend
    (MariaDB's index length limits are the usual trap)."""
    migration.sync(database)
    instance_uuid = str(uuid.uuid4())
    database.instance_create(
        {'uuid': instance_uuid, 'display_name': 'ünïcode <name> & "q"',
         'user_id': 'u', 'project_id': 'p', 'flavorid': '1',
         'flavor_name': 'm1.tiny', 'vcpus': 1, 'memory_mb': 512,
         'root_gb': 1, 'vm_state': 'active'},
        system_metadata={'shelved_disk': 'x' * 255})
    instance = database.instance_get(instance_uuid)
    assert instance.display_name == 'ünïcode <name> & "q"'
    assert instance.system_metadata['shelved_disk'] == 'x' * 255
