"""Instances are read with their metadata, system metadata and faults in a
fixed number of statements (lifecycle/db/instances.py): each instance gets
its own children, whatever the batch it was read in. Real SQLite."""

import datetime
import uuid

import pytest
import sqlalchemy as sa

from lifecycle import exception
from lifecycle.db import api as db_api
from lifecycle.db import instances as db_instances
from lifecycle.db import migration


@pytest.fixture
def db(tmp_path):
    database = db_api.Database('sqlite:///%s' % (tmp_path / 'i.sqlite'))
    migration.sync(database)
    yield database
    database.dispose()


def _create(db, n: int) -> str:
    instance_uuid = str(uuid.uuid4())
    db.instance_create({
        'uuid': instance_uuid, 'display_name': 'i%d' % n, 'user_id': 'u',
        'project_id': 'p', 'image_ref': 'none', 'flavorid': 'f',
        'flavor_name': 'f', 'vcpus': 1, 'memory_mb': 512, 'root_gb': 1,
        'vm_state': 'active'},
        metadata={'n': str(n)},
        system_metadata={'own': str(n), 'shared': 'x'})
    for k in range(n % 3):
        db.instance_fault_add(instance_uuid,
                              db_api.Fault(500, 'fault %d of %d' % (k, n)))
    return instance_uuid


def _selects(db, call) -> int:
    """The SELECT statements ``call`` executed."""
    seen = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)
    sa.event.listen(db.engine, 'before_cursor_execute', count)
    try:
        call()
    finally:
        sa.event.remove(db.engine, 'before_cursor_execute', count)
    return len([s for s in seen if s.lstrip().upper().startswith('SELECT')])


@pytest.mark.parametrize('batch', [2, 500])
def test_each_instance_gets_its_own_children(db, monkeypatch, batch):
    monkeypatch.setattr(db_instances, '_CHILDREN_BATCH', batch)
    created = {_create(db, n): n for n in range(7)}

    listed = db.instance_get_all()

    assert sorted(i.uuid for i in listed) == sorted(created)
    for instance in listed:
        n = created[instance.uuid]
        assert instance.display_name == 'i%d' % n
        assert instance.metadata_dict == {'n': str(n)}
        assert instance.system_metadata == {'own': str(n), 'shared': 'x'}
        # Newest first, as Nova shows the last fault.
        assert [f.message for f in instance.faults] == [
            'fault %d of %d' % (k, n) for k in reversed(range(n % 3))]
        assert isinstance(instance.created_at, datetime.datetime)
        assert sa.inspect(instance).session is None


def test_reads_take_the_same_statements_whatever_the_number(db):
    first = _create(db, 1)
    one = _selects(db, lambda: db.instance_get_all())
    for n in range(2, 31):
        _create(db, n)
    thirty = _selects(db, lambda: db.instance_get_all())

    # The instances, their key/value children, their faults.
    assert one == thirty == 3
    assert _selects(db, lambda: db.instance_get(first)) == 3


def test_get_and_update_read_the_row_as_left(db):
    instance_uuid = _create(db, 1)

    updated = db.instance_update(
        instance_uuid, {'task_state': 'shelving'},
        system_metadata={'own': None, 'new': 'y'},
        fault=db_api.Fault(409, 'newest'))

    assert updated.task_state == 'shelving'
    assert updated.system_metadata == {'shared': 'x', 'new': 'y'}
    assert updated.fault.message == 'newest'
    again = db.instance_get(instance_uuid)
    assert (again.task_state, again.system_metadata, again.fault.message) == (
        'shelving', {'shared': 'x', 'new': 'y'}, 'newest')


def test_deleted_instance_is_read_only_when_asked(db):
    instance_uuid = _create(db, 2)
    db.instance_mark_deleted(instance_uuid)

    with pytest.raises(exception.InstanceNotFound):
        db.instance_get(instance_uuid)
    deleted = db.instance_get(instance_uuid, read_deleted=True)
    assert deleted.vm_state == 'deleted'
    assert deleted.metadata_dict == {'n': '2'}
    assert db.instance_get_all() == []


@pytest.mark.parametrize('expected, matches', [
    ({'expected_task_state': None}, True),
    ({'expected_task_state': [None, 'spawning']}, True),
    ({'expected_task_state': 'spawning'}, False),
    ({'expected_task_state': []}, False),
    ({'expected_vm_state': ['active', 'stopped']}, True),
    ({'expected_vm_state': ['shelved']}, False),
    ({'expected_claimed_host': 'h1'}, False),
])
def test_update_happens_only_as_expected(db, expected, matches):
    # The prebuilt UPDATE of each shape of expectations (instance_update).
    instance_uuid = _create(db, 1)

    def update():
        return db.instance_update(instance_uuid, {'task_state': 'shelving'},
                                  system_metadata={'shared': 'changed'},
                                  **expected)
    if matches:
        assert update().task_state == 'shelving'
    else:
        with pytest.raises(exception.InstanceInvalidState):
            update()
    after = db.instance_get(instance_uuid)
    assert after.task_state == ('shelving' if matches else None)
    assert after.system_metadata['shared'] == ('changed' if matches
                                               else 'x')


def test_update_of_no_column_is_refused_with_nothing_changed(db):
    instance_uuid = _create(db, 1)

    with pytest.raises(ValueError, match='task_stat'):
        db.instance_update(instance_uuid, {'task_stat': 'shelving',
                                           'host': 'h1'})
    assert db.instance_get(instance_uuid).host is None


def test_a_read_without_faults_is_one_statement_fewer_and_says_so(db):
    instance_uuid = _create(db, 1)
    db.instance_fault_create(instance_uuid, 500, 'kept')

    assert _selects(db, lambda: db.instance_get(
        instance_uuid, faults=False)) == 2
    bare = db.instance_get(instance_uuid, faults=False)
    full = db.instance_get(instance_uuid)
    assert (bare.uuid, bare.system_metadata, bare.metadata_dict) == (
        full.uuid, full.system_metadata, full.metadata_dict)
    assert full.fault.message == 'kept'
    # Not an empty list: a reader that needs the faults finds out at once.
    with pytest.raises(sa.orm.exc.DetachedInstanceError):
        _ = bare.fault


def test_an_update_read_back_without_faults_is_one_statement_fewer(db):
    instance_uuid = _create(db, 1)
    db.instance_fault_create(instance_uuid, 500, 'kept')

    def update(task_state, **kwargs):
        return db.instance_update(instance_uuid, {'task_state': task_state},
                                  **kwargs)
    assert _selects(db, lambda: update('shelving')) == 3
    assert _selects(db, lambda: update('spawning', faults=False)) == 2
    bare = update(None, faults=False)
    assert (bare.task_state, bare.system_metadata['shared']) == (None, 'x')
    assert update(None).fault.message == 'kept'
    with pytest.raises(sa.orm.exc.DetachedInstanceError):
        _ = bare.fault
