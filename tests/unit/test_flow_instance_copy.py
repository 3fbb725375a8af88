"""A compute flow run carries its instance row from task to task
(``FlowRun.instance``): read once, passed on by the tasks that keep it,
dropped after a task that writes, and read afresh for a revert. Real
SQLite, the real flow runner; the reads are counted on the real database
object."""

import uuid

import pytest

from lifecycle.compute import flows
from lifecycle.compute import parts as parts_mod
from lifecycle.db import api as db_api
from lifecycle.db import migration
from lifecycle.flows import engine as flow_engine


@pytest.fixture
def db(tmp_path, monkeypatch):
    database = db_api.Database('sqlite:///%s' % (tmp_path / 'copy.sqlite'))
    migration.sync(database)
    database.reads = 0
    read = database.instance_get

    def counted(*args, **kwargs):
        database.reads += 1
        return read(*args, **kwargs)
    monkeypatch.setattr(database, 'instance_get', counted)
    yield database
    database.dispose()


def _instance(db) -> str:
    return db.instance_create({
        'uuid': str(uuid.uuid4()), 'display_name': 'first', 'user_id': 'u',
        'project_id': 'p', 'image_ref': 'none', 'flavorid': 'f',
        'flavor_name': 'f', 'vcpus': 1, 'memory_mb': 512, 'root_gb': 1,
        'vm_state': 'active'}).uuid


SEEN: list[tuple[str, str]] = []


class Look(flows._Task):
    """Reads the name; changes nothing."""
    NAME = 'look'
    KEEPS_INSTANCE = True

    def execute(self, instance_uuid: str) -> None:
        SEEN.append((self.name, self.instance(instance_uuid).display_name))

    def revert(self, instance_uuid: str, **kwargs) -> None:
        SEEN.append(('revert', self.instance(instance_uuid).display_name))


class LookAgain(Look):
    NAME = 'look_again'


class LookLast(Look):
    NAME = 'look_last'


class Rename(flows._Task):
    """Writes the row without handing the run the new one."""
    NAME = 'rename'

    def execute(self, instance_uuid: str) -> None:
        self.parts.db.instance_update(instance_uuid,
                                      {'display_name': 'second'})


class RenameThenFail(Look):
    """Says it keeps the row, writes part of its work, then fails."""
    NAME = 'rename_then_fail'

    def execute(self, instance_uuid: str) -> None:
        self.parts.db.instance_update(instance_uuid,
                                      {'display_name': 'partly'})
        raise RuntimeError('failed half-way')


def _run(db, tasks, instance_uuid, handed=None):
    SEEN.clear()
    parts = parts_mod.HostParts('h1', db, None, None, None, None)
    runner = flow_engine.FlowRunner(db, 'compute:h1', {
        'test': lambda run: flow_engine.linear('test', run, tasks)})
    runner.run('test', parts_mod.FlowRun(parts, instance=handed),
               {'instance_uuid': instance_uuid})


def test_a_kept_row_serves_the_next_task_and_a_write_drops_it(db):
    instance_uuid = _instance(db)
    _run(db, [Look, LookAgain, Rename, LookLast], instance_uuid)
    # The second look used the first one's copy; the one after the write
    # read the row again and saw the new name.
    assert db.reads == 2
    assert SEEN == [('look', 'first'), ('look_again', 'first'),
                    ('look_last', 'second')]


def test_the_row_the_endpoint_read_is_the_first_copy(db):
    instance_uuid = _instance(db)
    handed = db.instance_get(instance_uuid, faults=False)
    db.reads = 0
    _run(db, [Look, LookAgain], instance_uuid, handed=handed)
    assert db.reads == 0
    assert SEEN == [('look', 'first'), ('look_again', 'first')]


def test_a_revert_reads_the_row_afresh(db):
    instance_uuid = _instance(db)
    with pytest.raises(RuntimeError, match='half-way'):
        _run(db, [Look, RenameThenFail], instance_uuid)
    # The failed task's own revert and then the look's: both see what the
    # failed task wrote, not the copy the run held before it.
    assert SEEN == [('look', 'first'), ('revert', 'partly'),
                    ('revert', 'partly')]
