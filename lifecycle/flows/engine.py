"""Runs linear flows with their progress persisted, and resumes unfinished
ones.

The progress is kept in TaskFlow's persistence format (its models and its
SQLAlchemy backend's tables ``logbooks``, ``flowdetails``,
``atomdetails``): one logbook per operation, its ``meta`` naming the owner
(``compute:<host>`` or ``conductor:<host>``), the flow kind and the
instance, one atom detail per task; the logbook is destroyed when the flow
has finished (succeeded or reverted), so what is left in the tables is
exactly the unfinished work of each service.

The flows are run by :class:`FlowRunner` itself, not by TaskFlow's action
engine. Every flow here is linear, with idempotent tasks and no retries;
for that, TaskFlow's engine (compiling a graph per flow, a scheduler and
completer per task, and a storage layer that copies the atom detail, takes
a reader-writer lock and wraps the write in a retry object at each of its
four state changes per task) cost more CPU than the tasks themselves: a
yappi profile of a 200-instance unshelve burst on the all-in-one put 72 %
of its CPU time inside ``SerialActionEngine.run_iter``, of which the tasks'
own ``execute`` was 27 %. What a resumed flow reads is all that is
written: the store and every task's pending detail with the logbook (one
transaction), each task's result as it succeeds, a failure and each
revert, then the logbook's removal.
"""

import functools
import inspect
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from oslo_db import exception as db_exc
from oslo_log import log as logging
from oslo_utils import uuidutils
from taskflow import exceptions as flow_exc
from taskflow import states as flow_states
from taskflow.persistence import models as flow_models
from taskflow.persistence.backends import impl_sqlalchemy
from taskflow.types import failure as flow_failure

from lifecycle.db import api as db_api
from lifecycle.flows import faults

LOG = logging.getLogger(__name__)

FINISHED = (flow_states.SUCCESS, flow_states.REVERTED)
STORAGE_ATTEMPTS = 5
# The version TaskFlow records for an atom of version (1, 0), as its
# storage does: the atom details read the same to either.
ATOM_VERSION = '1.0'
# The atom detail holding a flow's store: TaskFlow's
# ``taskflow.storage.Storage.injector_name``. Not imported from there:
# taskflow.storage loads networkx for TaskFlow's in-memory backend, about
# 0.2 s at the start of every service (tests/unit/test_flow_store.py
# checks that the two agree).
INJECTOR_NAME = '_TaskFlow_INJECTOR'
# A task's state once its revert has begun: the flow is being reverted.
_REVERTING = frozenset((flow_states.FAILURE, flow_states.REVERTING,
                        flow_states.REVERTED, flow_states.REVERT_FAILURE))
# The arguments a revert is given besides its execute's, as TaskFlow's.
_REVERT_RESULT = 'result'
_REVERT_FLOW_FAILURES = 'flow_failures'


@functools.cache
def _parameters(function: Callable) -> tuple[tuple[str, ...],
                                            frozenset[str], bool]:
    """A function's named parameters (without ``self``), those of them
    with a default, and whether it takes ``**kwargs``; once per function."""
    named, optional, var_keyword = [], set(), False
    for i, param in enumerate(inspect.signature(function).parameters
                              .values()):
        if i == 0 and param.name == 'self':
            continue
        if param.kind is param.VAR_KEYWORD:
            var_keyword = True
        elif param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            named.append(param.name)
            if param.default is not param.empty:
                optional.add(param.name)
    return tuple(named), frozenset(optional), var_keyword


class LifecycleTask:
    """A task of a lifecycle flow: idempotent (a resumed flow runs the
    interrupted task again), with a revert where undoing makes sense.

    ``execute``'s parameters name what it takes from the flow's store or
    from an earlier task's ``default_provides`` (one name, or a tuple of
    names for the items of a sequence it returns). ``revert`` is given
    those of them it names, plus ``result`` (what ``execute`` returned, or
    the :class:`~taskflow.types.failure.Failure` it raised) and
    ``flow_failures`` when it takes them (``**kwargs``). Dependencies
    (manager, driver, ...) are given to the constructor and never
    persisted; persisted are only the flow's store and results."""

    NAME = ''
    default_provides: str | tuple[str, ...] | None = None

    def __init__(self, flow_name: str, owner, name: str | None = None
                 ) -> None:
        self.flow_name = flow_name
        self.owner = owner
        self.name = name or self.NAME

    def execute(self, *args, **kwargs) -> Any:
        raise NotImplementedError

    def revert(self, *args, **kwargs) -> None:
        """Nothing to undo unless a task says so."""

    def pre_execute(self) -> None:
        faults.boundary(self.flow_name, self.name, faults.BEFORE)

    def post_execute(self) -> None:
        faults.boundary(self.flow_name, self.name, faults.AFTER)

    def pre_revert(self) -> None:
        """Before ``revert``; nothing unless a task says so."""

    def provides(self) -> tuple[str, ...]:
        """The names of what ``execute`` returns."""
        provides = self.default_provides
        if provides is None:
            return ()
        return (provides,) if isinstance(provides, str) else tuple(provides)

    def provided(self, result) -> dict:
        """The names ``result`` gives to the tasks after this one."""
        if isinstance(self.default_provides, str):
            return {self.default_provides: result}
        return {name: result[i] for i, name in enumerate(self.provides())}

    def missing(self, available) -> list[str]:
        """What ``execute`` needs that ``available`` lacks."""
        named, optional, _ = _parameters(type(self).execute)
        return [name for name in named
                if name not in optional and name not in available]


class InstanceTask(LifecycleTask):
    """A task of a run that carries its instance's row from task to task
    (the owner's ``instance``, as Nova's managers carry one instance
    object through an operation): read once, passed on by the tasks that
    keep it, dropped after any other, read afresh for a revert (the
    failed task may have written part of its work). What must not race
    is decided by the conditional updates, never by this copy. ``db`` is
    set by the subclass."""

    # Whether ``execute`` leaves the row as the run holds it: it changes
    # nothing of it, or hands the run the row its own update committed.
    KEEPS_INSTANCE = False
    db = None

    def instance(self, instance_uuid: str):
        """The run's copy of the instance, read when it has none."""
        run = self.owner
        if run.instance is None or run.instance.uuid != instance_uuid:
            run.instance = self.db.instance_get(instance_uuid, faults=False)
        return run.instance

    def post_execute(self) -> None:
        super().post_execute()
        if not self.KEEPS_INSTANCE:
            self.owner.instance = None

    def pre_revert(self) -> None:
        super().pre_revert()
        self.owner.instance = None


class LinearFlow:
    """Tasks run in order; a failure reverts the failed task and then
    every finished one, last first."""

    def __init__(self, name: str, tasks: list[LifecycleTask]) -> None:
        self.name = name
        self.tasks = tasks

    def __iter__(self) -> Iterator[LifecycleTask]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


def linear(flow_name: str, owner,
           tasks: list[type[LifecycleTask]]) -> LinearFlow:
    """A linear flow of ``tasks`` (classes with a ``NAME``, instantiated
    with the owner)."""
    return LinearFlow(flow_name, [task_cls(flow_name, owner,
                                           name=task_cls.NAME)
                                  for task_cls in tasks])


def _arguments(function: Callable, values: Mapping, **extra) -> dict:
    """The keyword arguments of ``function`` found in ``values``; of
    ``extra``, those it takes."""
    named, _, var_keyword = _parameters(function)
    args = {name: values[name] for name in named if name in values}
    for name, value in extra.items():
        if var_keyword or name in named:
            args[name] = value
    return args


class _Backend(impl_sqlalchemy.SQLAlchemyBackend):
    """TaskFlow's SQLAlchemy backend with one connection object, reused.

    TaskFlow asks its backend for a new connection object for every read
    and write, and each builds TaskFlow's tables anew, so no statement ever
    hits SQLAlchemy's compiled-statement cache. The connection object holds
    no DB connection (each call takes one from the engine's pool), so
    sharing it between threads is safe."""

    def __init__(self, conf: dict, engine) -> None:
        super().__init__(conf, engine=engine)
        self._shared = _Connection(self, upgrade_lock=self._upgrade_lock)
        self._shared.validate(max_retries=self._max_retries)
        self._validated = True

    def get_connection(self):
        return self._shared


class _Connection(impl_sqlalchemy.Connection):
    """TaskFlow's connection, with the two writes a flow makes at every
    run in fewer statements, built once.

    ``insert_logbook`` writes a new logbook with its flow detail and atoms
    in one transaction of three INSERTs (TaskFlow's ``save_logbook`` first
    reads whether the logbook exists, then inserts each atom on its own).
    ``update_atom_details`` is one UPDATE: TaskFlow's reads the stored row
    and merges the given detail into it, but its ``merge`` takes every
    field, so the row becomes the given detail and the read only told
    whether it exists -- which the UPDATE's row count tells as well."""

    def __init__(self, backend, upgrade_lock) -> None:
        super().__init__(backend, upgrade_lock)
        atoms = self._tables.atomdetails
        # The new values are the parameters (Core's SET clause is made of
        # the column names among them); the row's uuid is bound as b_uuid.
        self._atom_update = sa.update(atoms).where(
            atoms.c.uuid == sa.bindparam('b_uuid'))
        self._book_insert = sa.insert(self._tables.logbooks)
        self._flow_insert = sa.insert(self._tables.flowdetails)
        self._atom_insert = sa.insert(atoms)

    def update_atom_details(self, atom_detail):
        values = atom_detail.to_dict()
        values['b_uuid'] = values.pop('uuid')
        try:
            with self._engine.begin() as conn:
                if conn.execute(self._atom_update, values).rowcount != 1:
                    raise flow_exc.NotFound(
                        'No atom details found with uuid %r' %
                        atom_detail.uuid)
        except sa.exc.SQLAlchemyError:
            flow_exc.raise_with_cause(
                flow_exc.StorageFailure,
                'Failed updating atom details with uuid %r' %
                atom_detail.uuid)
        return atom_detail

    def insert_logbook(self, book: flow_models.LogBook) -> None:
        """The rows TaskFlow's ``save_logbook`` writes for a new logbook."""
        flows = [dict(fd.to_dict(), parent_uuid=book.uuid) for fd in book]
        atoms = [dict(ad.to_dict(), parent_uuid=fd.uuid,
                      atom_type=flow_models.atom_detail_type(ad))
                 for fd in book for ad in fd]
        try:
            with self._engine.begin() as conn:
                conn.execute(self._book_insert, book.to_dict())
                if flows:
                    conn.execute(self._flow_insert, flows)
                if atoms:
                    conn.execute(self._atom_insert, atoms)
        except sa.exc.SQLAlchemyError:
            flow_exc.raise_with_cause(
                flow_exc.StorageFailure,
                'Failed saving logbook %r' % book.uuid)


def _pending_detail(task: LifecycleTask) -> flow_models.TaskDetail:
    """A task's detail before it runs, as TaskFlow's storage creates it."""
    detail = flow_models.TaskDetail(task.name, uuidutils.generate_uuid())
    detail.state = flow_states.PENDING
    detail.intention = flow_states.EXECUTE
    detail.version = ATOM_VERSION
    return detail


class _Run:
    """One run of a flow, new or resumed, from its atom details."""

    def __init__(self, flow: LinearFlow, flow_detail: flow_models.FlowDetail,
                 storage_call: Callable) -> None:
        # FlowRunner._call: a storage call, retried.
        self.storage_call = storage_call
        self.tasks = list(flow)
        self.details = {ad.name: ad for ad in flow_detail}
        injector = self.details.get(INJECTOR_NAME)
        self.values = dict((injector.results if injector else None) or {})
        for task in self.tasks:
            detail = self.details[task.name]
            if detail.state == flow_states.SUCCESS:
                self.values.update(task.provided(detail.results))

    def _save(self, detail) -> None:
        self.storage_call('update_atom_details', detail)
        self.details[detail.name] = detail

    def to_end(self) -> dict:
        """Run what is left; the store and every result by name. Raises
        what the failed task raised, once the run is reverted."""
        failed = self._recorded_failure()
        if failed is None:
            failed = self._execute()
        if failed is not None:
            self._revert(*failed)
        return self.values

    def _recorded_failure(self) -> tuple[int, flow_failure.Failure] | None:
        """Where the revert a crash interrupted had got to, if any."""
        index, found = None, None
        for i, task in enumerate(self.tasks):
            detail = self.details[task.name]
            if (detail.state in _REVERTING or
                    detail.intention == flow_states.REVERT):
                index = i
                found = found or detail.failure
        if index is None:
            return None
        return index, found or flow_failure.Failure.from_exception(
            RuntimeError('the revert of a %s flow was interrupted' %
                         self.tasks[0].flow_name))

    def _execute(self) -> tuple[int, flow_failure.Failure] | None:
        # The last task's success is not written: the logbook's removal
        # right after it records the end, and a crash in between runs the
        # last task again, as one after any task's own work.
        last = len(self.tasks) - 1
        for i, task in enumerate(self.tasks):
            detail = self.details[task.name]
            if detail.state == flow_states.SUCCESS:
                continue
            args = _arguments(type(task).execute, self.values)
            task.pre_execute()
            try:
                result = task.execute(**args)
            except Exception:
                failure = flow_failure.Failure()
                LOG.warning('Task %s of the %s flow of instance %s failed '
                            '(%s); reverting', task.name, task.flow_name,
                            self.values.get('instance_uuid'),
                            failure.exception_str)
                failed = detail.copy()
                failed.state = flow_states.FAILURE
                failed.intention = flow_states.REVERT
                failed.failure = failure
                self._save(failed)
                return i, failure
            task.post_execute()
            self.values.update(task.provided(result))
            if i < last:
                done = detail.copy()
                done.put(flow_states.SUCCESS, result)
                self._save(done)
        return None

    def _revert(self, index: int, failure: flow_failure.Failure) -> None:
        """Revert the failed task, then every finished one, last first;
        a revert that fails stops there (what came before may be what it
        needed, as TaskFlow's engine stops). Raises the failure."""
        flow_failures = {self.tasks[index].name: failure}
        for task in reversed(self.tasks[:index + 1]):
            detail = self.details[task.name]
            if detail.state in (flow_states.PENDING, flow_states.REVERTED):
                continue  # never ran, or already undone
            # The failed task (its detail keeps the failure through the
            # revert) is given its failure, the others their result.
            result = (detail.failure if detail.failure is not None
                      else detail.results)
            try:
                task.pre_revert()
                task.revert(**_arguments(
                    type(task).revert, self.values,
                    **{_REVERT_RESULT: result,
                       _REVERT_FLOW_FAILURES: flow_failures}))
            except Exception:
                LOG.exception('Revert of task %s of flow %s failed; the '
                              'tasks before it are not reverted', task.name,
                              task.flow_name)
                broken = detail.copy()
                broken.state = flow_states.REVERT_FAILURE
                broken.revert_failure = flow_failure.Failure()
                self._save(broken)
                break
            reverted = detail.copy()
            reverted.state = flow_states.REVERTED
            reverted.intention = flow_states.REVERT
            self._save(reverted)
        failure.reraise()


class FlowRunner:
    """Runs the flows of one service (``owner``) on the project database.

    ``factories`` maps a flow kind to ``factory(owner_object) ->
    LinearFlow``; the same factory rebuilds the flow on resume, so task
    names must not change between releases without a migration of
    unfinished flows.
    """

    def __init__(self, db: db_api.Database, owner: str,
                 factories: dict[str, Callable]) -> None:
        self.owner = owner
        self.factories = factories
        self.backend = _Backend({'connection': str(db.engine.url)},
                                db.engine)

    def _call(self, name: str, *args):
        """A storage call, retried on a lost connection (oslo.db's
        translation of it) or TaskFlow's StorageFailure."""
        method = getattr(self.backend.get_connection(), name)
        for attempt in range(STORAGE_ATTEMPTS):
            try:
                result = method(*args)
                # get_logbooks is a generator: read it inside the retry.
                return list(result) if inspect.isgenerator(result) else result
            except (flow_exc.StorageFailure, db_exc.DBConnectionError,
                    db_exc.DBDeadlock):
                if attempt == STORAGE_ATTEMPTS - 1:
                    raise
                LOG.warning('Flow storage failed in %s, retrying', name,
                            exc_info=True)
                time.sleep(0.2 * 2 ** attempt)

    def run(self, kind: str, owner_object, store: dict) -> dict:
        """Run a new flow of ``kind`` to the end; the store and every
        task's result by name. Raises what the failed task raised (after
        the failed task and the finished ones were reverted)."""
        flow = self.factories[kind](owner_object)
        available = set(store)
        for task in flow:
            missing = task.missing(available)
            if missing:
                # A programming error, found before anything is written.
                raise ValueError('%s flow: nothing before task %s provides '
                                 '%s' % (kind, task.name, ', '.join(missing)))
            available.update(task.provides())
        book = flow_models.LogBook('%s:%s' % (kind, store.get(
            'instance_uuid', '')))
        book.meta = {'owner': self.owner, 'kind': kind,
                     'instance_uuid': store.get('instance_uuid')}
        flow_detail = flow_models.FlowDetail(flow.name,
                                             uuidutils.generate_uuid())
        flow_detail.state = flow_states.RUNNING
        injector = flow_models.TaskDetail(INJECTOR_NAME,
                                          uuidutils.generate_uuid())
        injector.results = dict(store)
        injector.state = flow_states.SUCCESS
        flow_detail.add(injector)
        for task in flow:
            flow_detail.add(_pending_detail(task))
        book.add(flow_detail)
        self._call('insert_logbook', book)
        return self._run_to_end(flow, book, flow_detail)

    def _run_to_end(self, flow: LinearFlow, book: flow_models.LogBook,
                    flow_detail: flow_models.FlowDetail) -> dict:
        try:
            return _Run(flow, flow_detail, self._call).to_end()
        finally:
            # Reached only while this process lives: a flow interrupted by
            # a crash keeps its logbook for :meth:`unfinished`.
            self._destroy(book.uuid)

    def _destroy(self, book_uuid: str) -> None:
        try:
            self._call('destroy_logbook', book_uuid)
        except Exception:  # only leaves a finished record
            LOG.warning('Could not remove the finished flow record %s',
                        book_uuid, exc_info=True)

    def unfinished(self) -> list[flow_models.LogBook]:
        """This service's logbooks left by a crash, oldest first."""
        books = [b for b in self._call('get_logbooks')
                 if (b.meta or {}).get('owner') == self.owner]
        return sorted(books, key=lambda b: b.created_at)

    def resume(self, book: flow_models.LogBook, owner_object) -> dict | None:
        """Resume one unfinished flow; returns and raises like :meth:`run`
        (a failure read back from the database comes as TaskFlow's
        WrappedFailure)."""
        kind = book.meta['kind']
        details = list(book)
        if not details:  # crashed between the logbook and the flow detail
            self._destroy(book.uuid)
            return None
        flow_detail = details[0]
        if flow_detail.state in FINISHED:
            self._destroy(book.uuid)
            return None
        LOG.info('Resuming %s flow of instance %s (left %s by an '
                 'interrupted %s)', kind, book.meta.get('instance_uuid'),
                 flow_detail.state, self.owner)
        flow = self.factories[kind](owner_object)
        self._add_missing_atoms(flow, flow_detail)
        return self._run_to_end(flow, book, flow_detail)

    def _add_missing_atoms(self, flow: LinearFlow,
                           flow_detail: flow_models.FlowDetail) -> None:
        """A flow saved before its tasks' details were (by TaskFlow's
        engine, which added them in a second write): add them pending."""
        known = {ad.name for ad in flow_detail}
        added = False
        for task in flow:
            if task.name not in known:
                flow_detail.add(_pending_detail(task))
                added = True
        if added:
            self._call('update_flow_details', flow_detail)

    def instances_in_flight(self) -> set[str]:
        """Instances with an unfinished flow of any service."""
        return {(b.meta or {}).get('instance_uuid')
                for b in self._call('get_logbooks')}
