"""The flow store's own writes (lifecycle/flows/engine.py ``_Connection``)
leave the tables exactly as TaskFlow's stock SQLAlchemy connection does; a
flow run by :class:`FlowRunner` reverts as TaskFlow's engine would and is
resumed from what it wrote, also after a kill (a real SIGKILL of a child
process). Real SQLite."""

import os
import signal
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from taskflow import exceptions as flow_exc
from taskflow import states as flow_states
from taskflow import storage as flow_storage
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


def _new_book() -> flow_models.LogBook:
    book = flow_models.LogBook('b', '00000000-0000-0000-0000-00000000000b')
    book.meta = {'owner': 'compute:h1', 'kind': 'unshelve'}
    flow = flow_models.FlowDetail('f', '00000000-0000-0000-0000-00000000000f')
    flow.state = flow_states.RUNNING
    injector = flow_models.TaskDetail('_TaskFlow_INJECTOR',
                                      '00000000-0000-0000-0000-000000000000')
    injector.put(flow_states.SUCCESS, {'instance_uuid': 'x'})
    flow.add(injector)
    flow.add(_task('one', '00000000-0000-0000-0000-000000000001'))
    flow.add(_task('two', '00000000-0000-0000-0000-000000000002'))
    book.add(flow)
    return book


def test_a_new_logbook_is_inserted_as_taskflow_saves_it(make_db):
    stock, ours = make_db('stock.sqlite'), make_db('ours.sqlite')
    _stock(stock).save_logbook(_new_book())
    _ours(ours).insert_logbook(_new_book())

    expected = _rows(stock)
    assert len(expected['atomdetails']) == 3
    assert _rows(ours) == expected
    [book] = _ours(ours).get_logbooks()
    assert book.meta == {'owner': 'compute:h1', 'kind': 'unshelve'}


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


class _Recorded(flow_engine.LifecycleTask):
    """Appends what it does to its owner (a list); reverts likewise."""

    def execute(self, instance_uuid):
        self.owner.append(('execute', self.name))
        return self.name.upper()

    def revert(self, instance_uuid, result, flow_failures, **kwargs):
        self.owner.append(('revert', self.name, result if isinstance(
            result, str) else type(result).__name__, sorted(flow_failures)))
        if os.environ.get('TEST_FLOW_KILL_IN_REVERT') == self.name:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.name == os.environ.get('TEST_FLOW_REVERT_FAILS'):
            raise OSError('revert of %s failed' % self.name)


class _A(_Recorded):
    NAME = 'a'


class _B(_Recorded):
    NAME = 'b'


class _Fails(_Recorded):
    NAME = 'fails'

    def execute(self, instance_uuid):
        self.owner.append(('execute', self.name))
        raise ValueError('no room on h1')


class _NeedsC(_Recorded):
    NAME = 'needs_c'

    def execute(self, instance_uuid, c):
        return c


_REVERTING_FACTORIES = {
    'three': lambda owner: flow_engine.linear('three', owner,
                                              [_A, _B, _Fails]),
    'two': lambda owner: flow_engine.linear('two', owner, [_A, _B]),
    'needs_c': lambda owner: flow_engine.linear('needs_c', owner,
                                                [_A, _NeedsC])}


def _reverting_runner(path: str) -> flow_engine.FlowRunner:
    database = db_api.Database('sqlite:///%s' % path)
    migration.sync(database)
    return flow_engine.FlowRunner(database, 'compute:h1',
                                  _REVERTING_FACTORIES)


def _logbooks(runner) -> int:
    with runner.backend.engine.connect() as conn:
        return conn.execute(sa.text('SELECT count(*) FROM logbooks')
                            ).scalar()


def test_a_failed_task_is_reverted_then_the_finished_ones_last_first(
        tmp_path, monkeypatch):
    monkeypatch.delenv('TEST_FLOW_REVERT_FAILS', raising=False)
    runner = _reverting_runner(str(tmp_path / 'flows.sqlite'))
    calls = []

    with pytest.raises(ValueError, match='no room on h1'):
        runner.run('three', calls, {'instance_uuid': 'i-1'})

    assert calls == [
        ('execute', 'a'), ('execute', 'b'), ('execute', 'fails'),
        ('revert', 'fails', 'Failure', ['fails']),
        ('revert', 'b', 'B', ['fails']), ('revert', 'a', 'A', ['fails'])]
    assert _logbooks(runner) == 0


def test_a_revert_that_fails_stops_the_revert_there(tmp_path, monkeypatch):
    monkeypatch.setenv('TEST_FLOW_REVERT_FAILS', 'b')
    runner = _reverting_runner(str(tmp_path / 'flows.sqlite'))
    calls = []

    # The task's own error is what the caller sees.
    with pytest.raises(ValueError, match='no room on h1'):
        runner.run('three', calls, {'instance_uuid': 'i-1'})

    # "a" may be what "b"'s undoing needed: it stays as it is.
    assert [c[:2] for c in calls if c[0] == 'revert'] == [
        ('revert', 'fails'), ('revert', 'b')]
    assert _logbooks(runner) == 0


def test_a_flow_is_written_in_one_transaction_per_task_and_removed(
        tmp_path):
    runner = _reverting_runner(str(tmp_path / 'flows.sqlite'))
    begins = []
    sa.event.listen(runner.backend.engine, 'begin',
                    lambda conn: begins.append(1))

    results = runner.run('two', [], {'instance_uuid': 'i-1'})

    # The logbook with every atom, the first task's result, the removal:
    # the last task's success is the removal itself.
    assert len(begins) == 3
    assert results == {'instance_uuid': 'i-1'}
    assert _logbooks(runner) == 0


def test_a_flow_missing_an_input_is_refused_with_nothing_written(tmp_path):
    runner = _reverting_runner(str(tmp_path / 'flows.sqlite'))
    calls = []

    with pytest.raises(ValueError, match='needs_c provides c'):
        runner.run('needs_c', calls, {'instance_uuid': 'i-1'})

    assert calls == []
    assert _logbooks(runner) == 0


def run_killed_in_revert(path: str) -> None:
    """In a child process: the failing flow, killed in the revert of b."""
    _reverting_runner(path).run('three', [], {'instance_uuid': 'i-1'})


def test_a_flow_killed_in_its_revert_finishes_the_revert_on_resume(
        tmp_path, monkeypatch):
    monkeypatch.delenv('TEST_FLOW_REVERT_FAILS', raising=False)
    path = str(tmp_path / 'flows.sqlite')
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    child = subprocess.run(
        [sys.executable, '-c', 'from tests.unit import test_flow_store as t;'
         ' t.run_killed_in_revert(%r)' % path], cwd=root,
        capture_output=True, text=True, timeout=120,
        env={**os.environ, 'TEST_FLOW_KILL_IN_REVERT': 'b'})
    assert child.returncode == -signal.SIGKILL, child.stderr
    runner = _reverting_runner(path)
    [book] = runner.unfinished()
    calls = []

    # The failure read back from the database names the task's error.
    with pytest.raises(flow_exc.WrappedFailure, match='no room on h1'):
        runner.resume(book, calls)

    # Nothing runs again; "fails" was reverted before the kill, "b" had
    # not recorded its revert (reverts are idempotent), "a" still had to.
    assert calls == [('revert', 'b', 'B', ['fails']),
                     ('revert', 'a', 'A', ['fails'])]
    assert runner.unfinished() == []


def test_the_store_is_kept_in_taskflows_own_injector_atom():
    # The engine names the store's atom detail itself (importing
    # taskflow.storage would load networkx at every service start); a
    # TaskFlow release that renamed it would strand the stores of flows
    # saved before the upgrade.
    assert flow_engine.INJECTOR_NAME == flow_storage.Storage.injector_name
