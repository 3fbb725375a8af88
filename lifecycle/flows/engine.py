"""Runs flows with their progress persisted, and resumes unfinished ones.

One logbook per operation, its ``meta`` naming the owner (``compute:<host>``
or ``conductor:<host>``), the flow kind and the instance; it is destroyed
when the flow has finished (succeeded or reverted), so what is left in the
tables is exactly the unfinished work of each service.
"""

import collections
import inspect
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
import taskflow.engines
from oslo_db import exception as db_exc
from oslo_log import log as logging
from oslo_utils import uuidutils
from taskflow import exceptions as flow_exc
from taskflow import states as flow_states
from taskflow import storage as flow_storage
from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.persistence import models as flow_models
from taskflow.persistence.backends import impl_sqlalchemy

from lifecycle.db import api as db_api
from lifecycle.flows import faults

LOG = logging.getLogger(__name__)

FINISHED = (flow_states.SUCCESS, flow_states.REVERTED)
STORAGE_ATTEMPTS = 5


class LifecycleTask(task.Task):
    """A task of a lifecycle flow: idempotent (a resumed flow runs the
    interrupted task again), with a revert where undoing makes sense.
    Dependencies (manager, driver, ...) are given to the constructor and
    never persisted; persisted are only the flow's store and results."""

    def __init__(self, flow_name: str, owner, **kwargs) -> None:
        super().__init__(**kwargs)
        self.flow_name = flow_name
        self.owner = owner

    def pre_execute(self) -> None:
        faults.boundary(self.flow_name, self.name, faults.BEFORE)

    def post_execute(self) -> None:
        faults.boundary(self.flow_name, self.name, faults.AFTER)


def linear(flow_name: str, owner,
           tasks: list[type[LifecycleTask]]) -> linear_flow.Flow:
    """A linear flow of ``tasks`` (classes with a ``NAME``, instantiated
    with the owner); a task's ``execute`` arguments name what it takes
    from the store or from an earlier task's ``provides``."""
    flow = linear_flow.Flow(flow_name)
    for task_cls in tasks:
        flow.add(task_cls(flow_name, owner, name=task_cls.NAME))
    return flow


class _Backend(impl_sqlalchemy.SQLAlchemyBackend):
    """TaskFlow's SQLAlchemy backend with one connection object, reused.

    TaskFlow asks its backend for a new connection object for every read
    and write, and each builds TaskFlow's tables anew, so no statement ever
    hits SQLAlchemy's compiled-statement cache (most of a flow's time went
    to compiling SQL). The connection object holds no DB connection (each
    call takes one from the engine's pool), so sharing it between threads
    is safe."""

    def __init__(self, conf: dict, engine) -> None:
        super().__init__(conf, engine=engine)
        connection = _Connection(self, upgrade_lock=self._upgrade_lock)
        connection.validate(max_retries=self._max_retries)
        self._validated = True
        self._shared = _RetriableConnection(_ResumptionWrites(connection))

    def get_connection(self):
        return self._shared


class _Connection(impl_sqlalchemy.Connection):
    """TaskFlow's connection with its two updates in fewer statements,
    built once.

    TaskFlow's updates read the stored row (for a flow, its atoms too),
    merge the given detail into it and write the merged row back. Its
    ``merge`` methods take every field of the given detail, so the row
    becomes the given detail: the read only tells whether the row exists,
    which the UPDATE's row count tells as well. What TaskFlow returns (the
    merged detail) is then the given one, unless another writer added
    atoms to the flow, which TaskFlow's own update merges in."""

    def __init__(self, backend, upgrade_lock) -> None:
        super().__init__(backend, upgrade_lock)
        atoms, flows = self._tables.atomdetails, self._tables.flowdetails
        # The new values are the parameters (Core's SET clause is made of
        # the column names among them); the row's uuid is bound as b_uuid.
        self._atom_update = sa.update(atoms).where(
            atoms.c.uuid == sa.bindparam('b_uuid'))
        self._flow_update = sa.update(flows).where(
            flows.c.uuid == sa.bindparam('b_uuid'))
        self._atom_insert = sa.insert(atoms)
        self._atoms_of_flow = sa.select(atoms.c.uuid).where(
            atoms.c.parent_uuid == sa.bindparam('b_uuid'))

    @staticmethod
    def _values(detail) -> dict:
        values = detail.to_dict()
        values['b_uuid'] = values.pop('uuid')
        return values

    def update_atom_details(self, atom_detail):
        try:
            with self._engine.begin() as conn:
                if conn.execute(self._atom_update,
                                self._values(atom_detail)).rowcount != 1:
                    raise flow_exc.NotFound(
                        'No atom details found with uuid %r' %
                        atom_detail.uuid)
        except sa.exc.SQLAlchemyError:
            flow_exc.raise_with_cause(
                flow_exc.StorageFailure,
                'Failed updating atom details with uuid %r' %
                atom_detail.uuid)
        return atom_detail

    def update_flow_details(self, flow_detail):
        try:
            with self._engine.begin() as conn:
                stored = set(conn.execute(self._atoms_of_flow, {
                    'b_uuid': flow_detail.uuid}).scalars())
                if stored <= {ad.uuid for ad in flow_detail}:
                    self._write_flow(conn, flow_detail, stored)
                    return flow_detail
        except sa.exc.SQLAlchemyError:
            flow_exc.raise_with_cause(
                flow_exc.StorageFailure,
                'Failed updating flow details with uuid %r' %
                flow_detail.uuid)
        return super().update_flow_details(flow_detail)

    def _write_flow(self, conn, flow_detail, stored: set) -> None:
        if conn.execute(self._flow_update,
                        self._values(flow_detail)).rowcount != 1:
            raise flow_exc.NotFound('No flow details found with uuid %r' %
                                    flow_detail.uuid)
        updates = [self._values(ad) for ad in flow_detail
                   if ad.uuid in stored]
        if updates:
            conn.execute(self._atom_update, updates)
        # The atoms a new flow adds all at once (TaskFlow inserts them one
        # statement each): the rows TaskFlow's _insert_atom_details writes.
        inserts = [dict(ad.to_dict(), parent_uuid=flow_detail.uuid,
                        atom_type=flow_models.atom_detail_type(ad))
                   for ad in flow_detail if ad.uuid not in stored]
        if inserts:
            conn.execute(self._atom_insert, inserts)


class _ResumptionWrites:
    """Writes only the atom changes a resumed flow reads.

    TaskFlow saves an atom's detail at every step: RUNNING, progress 0.0,
    the result with SUCCESS, progress 1.0 -- four write transactions per
    task, most of a flow's writes (``python -m tools.bench.writes``). A
    resumed flow re-runs an atom left RUNNING or PENDING alike (its tasks
    are idempotent for that reason), and nothing reads the progress: so a
    change to RUNNING (or PENDING, to execute) and a change of the progress
    alone are kept in memory only; the next write of the atom (its result,
    a failure, a revert) carries everything, as TaskFlow's update writes
    the whole row. Reverting and failed states are always written."""

    # Atoms whose last write is remembered: enough for every flow in
    # progress in one service; older entries only cost a write.
    REMEMBERED = 4096

    def __init__(self, connection) -> None:
        self._connection = connection
        self._written: collections.OrderedDict = collections.OrderedDict()
        self._flows: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self._connection, name)

    def update_atom_details(self, atom_detail):
        if self._needed(atom_detail):
            saved = self._connection.update_atom_details(atom_detail)
            self._remember(saved)
            return saved
        return atom_detail

    def update_flow_details(self, flow_detail):
        """TaskFlow's flow-detail update rewrites the flow's row and every
        atom of it; it is needed only when it adds atoms or changes the
        meta, or for a state a resumed flow acts on (a failure or a revert:
        :meth:`FlowRunner.resume` re-runs a flow left PENDING, RUNNING or
        SUCCESS alike, and a re-run of finished atoms does nothing)."""
        if self._flow_needed(flow_detail):
            saved = self._connection.update_flow_details(flow_detail)
            with self._lock:
                self._flows[saved.uuid] = _flow_essential(saved)
                self._flows.move_to_end(saved.uuid)
                while len(self._flows) > self.REMEMBERED:
                    self._flows.popitem(last=False)
            for atom_detail in saved:
                self._remember(atom_detail)
            return saved
        return flow_detail

    def _flow_needed(self, flow_detail) -> bool:
        if flow_detail.state not in _FLOW_STATES_RESUMED_ALIKE:
            return True
        with self._lock:
            last = self._flows.get(flow_detail.uuid)
        return last is None or last != _flow_essential(flow_detail)

    def _needed(self, atom_detail) -> bool:
        if (atom_detail.state in (flow_states.PENDING, flow_states.RUNNING)
                and atom_detail.intention == flow_states.EXECUTE
                and atom_detail.failure is None):
            return False
        with self._lock:
            last = self._written.get(atom_detail.uuid)
        return last is None or last != _essential(atom_detail)

    def _remember(self, atom_detail) -> None:
        with self._lock:
            self._written[atom_detail.uuid] = _essential(atom_detail)
            self._written.move_to_end(atom_detail.uuid)
            while len(self._written) > self.REMEMBERED:
                self._written.popitem(last=False)


# Flow states after which a resumed flow does the same: run the atoms not
# finished (see FlowRunner.resume).
_FLOW_STATES_RESUMED_ALIKE = frozenset((
    flow_states.PENDING, flow_states.RUNNING, flow_states.RESUMING,
    flow_states.SUCCESS))


def _flow_essential(flow_detail) -> tuple:
    """What of a flow detail a resumed flow needs written, beyond its
    state: its atoms (TaskFlow inserts new ones through this update) and
    its meta."""
    return (frozenset(ad.uuid for ad in flow_detail), repr(flow_detail.meta))


def _essential(atom_detail) -> dict:
    """What of an atom's detail a resumed flow reads (all but meta)."""
    values = atom_detail.to_dict()
    values.pop('meta', None)
    return values


class _RetriableConnection:
    """TaskFlow retries a storage write that fails with its StorageFailure;
    the project's engine translates a dropped connection into oslo.db's
    DBConnectionError first, which TaskFlow would not retry. Turned back
    into StorageFailure, TaskFlow's own retry (on a fresh, pre-pinged
    connection) takes care of it."""

    def __init__(self, connection) -> None:
        self._connection = connection

    def __getattr__(self, name: str):
        attr = getattr(self._connection, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            try:
                return attr(*args, **kwargs)
            except (db_exc.DBConnectionError, db_exc.DBDeadlock) as e:
                raise flow_exc.StorageFailure(
                    'database connection lost in %s: %s' % (name, e)) from e
        return call


class FlowRunner:
    """Runs the flows of one service (``owner``) on the project database.

    ``factories`` maps a flow kind to ``factory(owner_object) -> Flow``; the
    same factory rebuilds the flow on resume, so task names must not
    change between releases without a migration of unfinished flows.
    """

    def __init__(self, db: db_api.Database, owner: str,
                 factories: dict[str, Callable]) -> None:
        self.owner = owner
        self.factories = factories
        self.backend = _Backend({'connection': str(db.engine.url)},
                                db.engine)

    def _call(self, name: str, *args):
        """A backend call of the runner's own (TaskFlow retries the calls
        its engine makes), retried the same way on a lost connection."""
        method = getattr(self.backend.get_connection(), name)
        for attempt in range(STORAGE_ATTEMPTS):
            try:
                result = method(*args)
                # get_logbooks is a generator: read it inside the retry.
                return list(result) if inspect.isgenerator(result) else result
            except flow_exc.StorageFailure:
                if attempt == STORAGE_ATTEMPTS - 1:
                    raise
                LOG.warning('Flow storage failed in %s, retrying', name,
                            exc_info=True)
                time.sleep(0.2 * 2 ** attempt)

    def run(self, kind: str, owner_object, store: dict):
        """Run a new flow of ``kind`` to the end; returns its engine's
        storage results. Raises what the failed task raised (after the
        engine reverted the finished tasks)."""
        book = flow_models.LogBook('%s:%s' % (kind, store.get(
            'instance_uuid', '')))
        book.meta = {'owner': self.owner, 'kind': kind,
                     'instance_uuid': store.get('instance_uuid')}
        flow = self.factories[kind](owner_object)
        # The logbook, its flow detail and the store in one write: given a
        # store, TaskFlow's load would save the logbook again to add the
        # flow detail, then the flow detail to add its injector (the atom
        # whose results are the store, as a resumed flow reads it), then
        # the injector's results.
        flow_detail = flow_models.FlowDetail(
            flow.name, uuidutils.generate_uuid())
        injector = flow_models.TaskDetail(flow_storage.Storage.injector_name,
                                          uuidutils.generate_uuid())
        injector.results = dict(store)
        injector.state = flow_states.SUCCESS
        flow_detail.add(injector)
        book.add(flow_detail)
        self._call('save_logbook', book)
        engine = taskflow.engines.load(flow, flow_detail=flow_detail,
                                       book=book, backend=self.backend,
                                       engine='serial')
        return self._run_to_end(engine, book)

    def _run_to_end(self, engine, book: flow_models.LogBook):
        try:
            engine.run()
        finally:
            # Reached only while this process lives: a flow interrupted by
            # a crash keeps its logbook for :meth:`unfinished`.
            self._destroy(book.uuid)
        return engine.storage.fetch_all()

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

    def resume(self, book: flow_models.LogBook, owner_object):
        """Resume one unfinished flow; raises like :meth:`run`."""
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
        engine = taskflow.engines.load(flow, flow_detail=flow_detail,
                                       book=book, backend=self.backend,
                                       engine='serial')
        return self._run_to_end(engine, book)

    def instances_in_flight(self) -> set[str]:
        """Instances with an unfinished flow of any service."""
        return {(b.meta or {}).get('instance_uuid')
                for b in self._call('get_logbooks')}
