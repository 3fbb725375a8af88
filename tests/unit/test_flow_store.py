"""The flow store's own updates (lifecycle/flows/engine.py ``_Connection``)
leave the tables exactly as TaskFlow's stock SQLAlchemy connection does,
and a flow started by :class:`FlowRunner` is resumed from what it wrote.
Real SQLite, TaskFlow's real engine."""

import os
import signal
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from taskflow import exceptions as flow_exc
from taskflow import states as flow_states
from taskflow.persistence import models as flow_models
from taskflow.persistence.backends import impl_sqlalchemy

from lifecycle.db import api as db_api
from lifecycle.db import migration
from lifecycle.db import models
from lifecycle.flows import engine as flow_engine
from lifecycle.flows import faults

TABLES = models.TASKFLOW_TABLES
# Stamped by the database's clock, so never equal between two runs.
_TIMES = ('created_at', 'updated_at')


@pytest.fixture
def make_db(tmp_path):
    made = []

    def make(name: str) -> db_api.Database:
        database = db_api.Database('sqlite:///%s' % (tmp_path / name))
        migration.sync(database)
        made.append(database)
        return database
    yield make
    for database in made:
        database.dispose()


def _stock(db: db_api.Database):
    backend = impl_sqlalchemy.SQLAlchemyBackend(
        {'connection': str(db.engine.url)}, engine=db.engine)
    return backend.get_connection()


def _ours(db: db_api.Database):
    return flow_engine.FlowRunner(db, 'test', {}).backend.get_connection()


def _rows(db: db_api.Database) -> dict:
    out = {}
    with db.engine.connect() as conn:
        for table in (TABLES.logbooks, TABLES.flowdetails,
                      TABLES.atomdetails):
            rows = conn.execute(sa.select(table).order_by('uuid')).mappings()
            out[table.name] = [{k: v for k, v in row.items()
                                if k not in _TIMES} for row in rows]
    return out


def _task(name: str, atom_uuid: str) -> flow_models.TaskDetail:
    detail = flow_models.TaskDetail(name, atom_uuid)
    detail.state = flow_states.PENDING
    detail.intention = flow_states.EXECUTE
    return detail


def _story(conn) -> None:
    """What a flow's storage does: a logbook with a flow detail, atoms
    added, atoms finished (one with results, one failed), the flow's state
    and meta changed."""
    book = flow_models.LogBook('b', '00000000-0000-0000-0000-00000000000b')
    flow = flow_models.FlowDetail('f', '00000000-0000-0000-0000-00000000000f')
    book.add(flow)
    conn.save_logbook(book)
    flow = flow.copy()
    flow.add(_task('one', '00000000-0000-0000-0000-000000000001'))
    flow.add(_task('two', '00000000-0000-0000-0000-000000000002'))
    conn.update_flow_details(flow)
    one = flow.find('00000000-0000-0000-0000-000000000001').copy()
    one.put(flow_states.SUCCESS, {'instance': {'uuid': 'x', 'n': 1}})
    conn.update_atom_details(one)
    two = flow.find('00000000-0000-0000-0000-000000000002').copy()
    two.state = flow_states.FAILURE
    two.meta = {'progress': 0.5}
    conn.update_atom_details(two)
    flow = flow.copy()
    flow.state = flow_states.REVERTING
    flow.meta = {'kind': 'unshelve'}
    flow.add(_task('three', '00000000-0000-0000-0000-000000000003'))
    conn.update_flow_details(flow)


def test_updates_leave_the_tables_as_taskflow_does(make_db):
    stock, ours = make_db('stock.sqlite'), make_db('ours.sqlite')
    _story(_stock(stock))
    _story(_ours(ours))

    expected = _rows(stock)
    assert len(expected['atomdetails']) == 3
    assert _rows(ours) == expected


def test_update_of_a_missing_detail_is_not_found(make_db):
    conn = _ours(make_db('ours.sqlite'))

    gone = _task('gone', str(uuid.uuid4()))
    gone.put(flow_states.SUCCESS, None)
    with pytest.raises(flow_exc.NotFound):
        conn.update_atom_details(gone)
    with pytest.raises(flow_exc.NotFound):
        conn.update_flow_details(flow_models.FlowDetail('gone',
                                                        str(uuid.uuid4())))


def test_atoms_another_writer_added_come_back(make_db):
    db = make_db('ours.sqlite')
    conn = _ours(db)
    _story(conn)
    flow_uuid = '00000000-0000-0000-0000-00000000000f'
    # The flow as a writer that never saw atom "three" holds it.
    stored = conn.get_flow_details(flow_uuid)
    partial = flow_models.FlowDetail(stored.name, flow_uuid)
    for atom in stored:
        if atom.name != 'three':
            partial.add(atom.copy())
    partial.state = flow_states.FAILURE

    saved = conn.update_flow_details(partial)

    assert sorted(ad.name for ad in saved) == ['one', 'three', 'two']
    assert conn.get_flow_details(flow_uuid).state == flow_states.FAILURE


class _First(flow_engine.LifecycleTask):
    NAME = 'first'
    default_provides = 'doubled'

    def execute(self, value):
        return value * 2


class _Second(flow_engine.LifecycleTask):
    NAME = 'second'
    default_provides = 'answer'

    def execute(self, instance_uuid, doubled):
        return '%s:%d' % (instance_uuid, doubled)


_FACTORIES = {'demo': lambda owner: flow_engine.linear(
    'demo', owner, [_First, _Second])}


def _runner(path: str) -> flow_engine.FlowRunner:
    database = db_api.Database('sqlite:///%s' % path)
    migration.sync(database)
    return flow_engine.FlowRunner(database, 'compute:h1', _FACTORIES)


def run_demo(path: str) -> None:
    """In a child process: the demo flow, killed before its second task."""
    _runner(path).run('demo', None, {'instance_uuid': 'i-1', 'value': 21})


def test_a_flow_killed_mid_way_resumes_from_what_it_wrote(tmp_path):
    path = str(tmp_path / 'flows.sqlite')
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    child = subprocess.run(
        [sys.executable, '-c', 'from tests.unit import test_flow_store as t;'
         ' t.run_demo(%r)' % path], cwd=root, capture_output=True,
        text=True, timeout=120,
        env={**os.environ, faults.ENV: 'demo:second:before'})
    assert child.returncode == -signal.SIGKILL, child.stderr
    runner = _runner(path)

    [book] = runner.unfinished()
    results = runner.resume(book, None)

    # The store and the first task's result came from the database.
    assert results['answer'] == 'i-1:42'
    assert runner.unfinished() == []
