"""Instances, their metadata and faults."""

import dataclasses
import datetime
import functools
import operator
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy import orm

from lifecycle import exception
from lifecycle.db import models
from lifecycle.db import requests

_UNSET = object()


# Instances whose children one statement reads (SQLite allows 32,766
# bound parameters; the other databases more).
_CHILDREN_BATCH = 500
# The classes of the key/value children, by the ``kind`` that
# _children_statements gives their rows.
_ITEM_CLASSES = (models.InstanceMetadata, models.InstanceSystemMetadata)


@functools.cache
def _instance_by_uuid(read_deleted: bool) -> sa.Select:
    """The statement of :meth:`InstancesMixin.instance_get`, the uuid bound
    as ``i_uuid``; built once, as the services read an instance a dozen
    times per operation (see ``lifecycle.db.hosts._claim_statements``)."""
    query = sa.select(models.Instance.__table__).where(
        models.Instance.uuid == sa.bindparam('i_uuid'))
    if not read_deleted:
        query = query.where(models.Instance.deleted_at.is_(None))
    return query


@functools.cache
def _children_statements(one: bool) -> tuple[sa.Select, sa.Select]:
    """The metadata and system metadata (one statement, told apart by
    ``kind``) and the faults (newest first) of the instances bound as
    ``i_uuids``; ``one``: of the single instance bound as ``i_uuid``.

    The single-instance form exists because an expanding IN is rendered
    anew at every execution (SQLAlchemy's post-compile step), which was a
    sixth of the all-in-one's CPU in a mass unshelve, all of it in the
    dozen single-instance reads of each operation."""
    meta = models.InstanceMetadata.__table__
    sysmeta = models.InstanceSystemMetadata.__table__
    faults = models.InstanceFault.__table__

    def of_instances(column):
        if one:
            return column == sa.bindparam('i_uuid')
        return column.in_(sa.bindparam('i_uuids', expanding=True))

    items = sa.union_all(*(
        sa.select(sa.literal_column(str(kind), sa.Integer).label('kind'),
                  table.c.instance_uuid,
                  table.c.id, table.c.key, table.c.value)
        .where(of_instances(table.c.instance_uuid))
        for kind, table in ((0, meta), (1, sysmeta)))).order_by('id')
    return items, (sa.select(faults)
                   .where(of_instances(faults.c.instance_uuid))
                   .order_by(faults.c.id.desc()))


@functools.cache
def _update_statement(vm_state: bool, claimed_host: bool,
                      no_task: bool | None) -> sa.Update:
    """The UPDATE of :meth:`InstancesMixin.instance_update` for one shape of
    its expectations, built once (an ORM update built per call cost most
    of the call). The new values are its parameters (Core makes the SET
    clause of the column names among them); the instance and the
    expectations are bound as ``e_*``. ``no_task``: None when the task
    state is not expected, else whether no task is one of the expected."""
    table = models.Instance.__table__
    query = sa.update(table).where(table.c.uuid == sa.bindparam('e_uuid'),
                                   table.c.deleted_at.is_(None))
    if vm_state:
        query = query.where(table.c.vm_state.in_(
            sa.bindparam('e_vm_states', expanding=True)))
    if claimed_host:
        query = query.where(
            table.c.claimed_host == sa.bindparam('e_claimed_host'))
    if no_task is not None:
        condition = table.c.task_state.in_(
            sa.bindparam('e_task_states', expanding=True))
        if no_task:
            condition = sa.or_(condition, table.c.task_state.is_(None))
        query = query.where(condition)
    return query


def _changed(compare, when: datetime.datetime) -> sa.ColumnElement:
    """``compare(last change, when)``, the last change being updated_at or,
    for a row never updated, created_at: spelt as an OR of the two
    columns, not as COALESCE, so that their indexes serve it (MariaDB has
    no index on an expression)."""
    inst = models.Instance
    return sa.or_(compare(inst.updated_at, when),
                  sa.and_(inst.updated_at.is_(None),
                          compare(inst.created_at, when)))


@functools.cache
def _system_metadata_delete() -> sa.Delete:
    table = models.InstanceSystemMetadata.__table__
    return sa.delete(table).where(
        table.c.instance_uuid == sa.bindparam('e_uuid'),
        table.c.key.in_(sa.bindparam('e_keys', expanding=True)))


def _set_system_metadata(connection, instance_uuid: str,
                         items: dict) -> None:
    """Set the system metadata keys of ``items``; a value of None deletes
    the key."""
    connection.execute(_system_metadata_delete(),
                       {'e_uuid': instance_uuid, 'e_keys': list(items)})
    rows = [{'instance_uuid': instance_uuid, 'key': key, 'value': value}
            for key, value in items.items() if value is not None]
    if rows:
        connection.execute(models.InstanceSystemMetadata.__table__.insert(),
                           rows)


def _loaded(cls: type, values) -> object:
    """An object of mapped class ``cls`` with ``values`` (its column
    attributes) as its loaded state, in no session.

    The values go straight into the new object's instance dict: a new
    object has no committed state to reconcile, which is all that
    ``set_committed_value`` adds, at twenty times the cost (an instance
    read builds a few dozen of these objects)."""
    obj = orm.class_mapper(cls).class_manager.new_instance()
    orm.attributes.instance_dict(obj).update(values)
    return obj


def _instances(connection: sa.Connection, query: sa.Select,
               params: dict | None = None, *, faults: bool = True
               ) -> list[models.Instance]:
    """The instances ``query`` selects (rows of the instances table), with
    their metadata, system metadata and (with ``faults``) faults, in three
    statements whatever their number (two without ``faults``: the
    attribute is then left unloaded, and reading it raises
    DetachedInstanceError).

    Read with Core, not the ORM's relationship loaders: the services read
    an instance a dozen times per operation and the API lists them all,
    and the ORM's three selectin loads per read cost five times the reads
    themselves. The objects belong to no session: they are read, never
    written back (changes go through :meth:`InstancesMixin.instance_update`).
    """
    instances = [_loaded(models.Instance, row)
                 for row in connection.execute(query, params).mappings()]
    children = {i.uuid: ([], [], []) for i in instances}
    uuids = list(children)
    items_query, faults_query = _children_statements(len(uuids) == 1)
    for start in range(0, len(uuids), _CHILDREN_BATCH):
        batch = ({'i_uuid': uuids[0]} if len(uuids) == 1 else
                 {'i_uuids': uuids[start:start + _CHILDREN_BATCH]})
        for kind, uuid, id_, key, value in connection.execute(items_query,
                                                              batch):
            children[uuid][kind].append(_loaded(_ITEM_CLASSES[kind], {
                'id': id_, 'instance_uuid': uuid, 'key': key,
                'value': value}))
        if faults:
            for row in connection.execute(faults_query, batch).mappings():
                children[row['instance_uuid']][2].append(
                    _loaded(models.InstanceFault, row))
    for instance in instances:
        meta, sysmeta, its_faults = children[instance.uuid]
        orm.attributes.set_committed_value(instance, 'metadata_items', meta)
        orm.attributes.set_committed_value(
            instance, 'system_metadata_items', sysmeta)
        if faults:
            orm.attributes.set_committed_value(instance, 'faults',
                                               its_faults)
        else:
            # Detached, not transient: an unloaded relationship of a
            # transient object reads as empty, of a detached one it raises.
            orm.make_transient_to_detached(instance)
    return instances


@dataclasses.dataclass(frozen=True)
class Fault:
    """A fault to record, alone or with the state change that ends a task
    (then in the same transaction: whoever sees the task ended sees why)."""

    code: int
    message: str
    details: str | None = None
    host: str | None = None

    @classmethod
    def from_exception(cls, error: BaseException,
                       host: str | None = None) -> 'Fault':
        """As Nova's ``add_instance_fault_from_exc``: the error's code
        (500 when it has none), its user-facing message, its class name."""
        return cls(getattr(error, 'code', 500), exception.message_of(error),
                   details=type(error).__name__, host=host)

    def row(self, instance_uuid: str) -> models.InstanceFault:
        return models.InstanceFault(
            instance_uuid=instance_uuid, code=self.code,
            message=self.message[:models.FAULT_MESSAGE_LENGTH],
            details=self.details, host=self.host)


class InstancesMixin:
    """Part of :class:`lifecycle.db.api.Database`."""

    # -- instances --------------------------------------------------------

    def instance_create(self, values: dict, metadata: dict | None = None,
                        system_metadata: dict | None = None,
                        request: requests.Request | None = None
                        ) -> models.Instance:
        """``request``: the one its first task carries out (recorded in
        the same transaction)."""
        instance = models.Instance(**values)
        instance.metadata_items = [
            models.InstanceMetadata(key=k, value=v)
            for k, v in (metadata or {}).items()]
        instance.system_metadata_items = [
            models.InstanceSystemMetadata(key=k, value=v)
            for k, v in (system_metadata or {}).items()]
        instance.faults = []
        with self.session() as session:
            session.add(instance)
            if request is not None:
                session.flush()  # the row the request refers to
                requests.replace(session, instance.uuid, request)
        return instance

    def instance_get(self, instance_uuid: str, read_deleted: bool = False,
                     *, faults: bool = True) -> models.Instance:
        """``faults=False``: without its faults (one statement fewer), for
        the services' flows, which read an instance a dozen times per
        operation and never its faults."""
        with self.session(readonly=True) as session:
            found = _instances(session.connection(), _instance_by_uuid(
                read_deleted), {'i_uuid': instance_uuid}, faults=faults)
        if not found:
            raise exception.InstanceNotFound(instance_id=instance_uuid)
        return found[0]

    def instance_get_all(self, *, host: str | None = None,
                         vm_states: Iterable[str] | None = None,
                         limit: int | None = None,
                         marker: str | None = None,
                         changed_since: datetime.datetime | None = None,
                         changed_before: datetime.datetime | None = None,
                         exact: Mapping[str, Iterable] | None = None
                         ) -> list[models.Instance]:
        """Instances newest first (Nova's default sort), paged by marker.

        ``changed_since``/``changed_before`` (naive UTC, both inclusive):
        only instances last changed in that window, the deleted ones
        among them, as Nova's ``changes-since``/``changes-before`` (a
        client following changes must see the deletions too).
        ``exact``: column name -> the values it may have (the API's
        project scope and exact-match filters), so that a page is one
        query of the rows it shows, not a read of every project's. The
        marker is looked up unfiltered, as Nova's."""
        inst = models.Instance
        table = inst.__table__
        unknown = set(exact or ()) - set(table.c.keys())
        if unknown:
            raise ValueError('not columns of instances: %s' % sorted(unknown))
        with self.session(readonly=True) as session:
            connection = session.connection()
            query = sa.select(table)
            for column, values in (exact or {}).items():
                query = query.where(table.c[column].in_(list(values)))
            if changed_since is None and changed_before is None:
                query = query.where(inst.deleted_at.is_(None))
            if changed_since is not None:
                query = query.where(_changed(operator.ge, changed_since))
            if changed_before is not None:
                query = query.where(_changed(operator.le, changed_before))
            if host is not None:
                query = query.where(inst.host == host)
            if vm_states is not None:
                query = query.where(inst.vm_state.in_(list(vm_states)))
            if marker is not None:
                mark = connection.execute(
                    sa.select(inst.created_at, inst.id).where(
                        inst.uuid == marker)).first()
                if mark is None:
                    raise exception.InstanceNotFound(instance_id=marker)
                query = query.where(sa.or_(
                    inst.created_at < mark.created_at,
                    sa.and_(inst.created_at == mark.created_at,
                            inst.id < mark.id)))
            query = query.order_by(inst.created_at.desc(), inst.id.desc())
            if limit is not None:
                query = query.limit(limit)
            return _instances(connection, query)

    def instance_get_in_task_since(self, cutoff) -> list[models.Instance]:
        """Instances with a task_state, unchanged since before ``cutoff``."""
        inst = models.Instance
        with self.session(readonly=True) as session:
            return _instances(session.connection(), sa.select(
                inst.__table__).where(
                inst.deleted_at.is_(None), inst.task_state.is_not(None),
                _changed(operator.lt, cutoff)))

    def instance_update(self, instance_uuid: str, values: dict, *,
                        expected_vm_state: Iterable[str] | None = None,
                        expected_task_state=_UNSET,
                        expected_claimed_host: str | None = None,
                        system_metadata: dict | None = None,
                        fault: Fault | None = None,
                        request: requests.Request | None = None,
                        action: str = 'update',
                        faults: bool = True) -> models.Instance:
        """Update an instance, optionally only if its states are as expected.

        The expectations are part of the UPDATE's WHERE clause, so of two
        racing requests exactly one wins; the loser gets
        InstanceInvalidState (409) and nothing changes. ``system_metadata``
        sets keys (a value of None deletes the key) and ``fault`` is
        recorded in the same transaction, as is ``request``: the request
        that carries out the task set here (lifecycle/db/requests.py). A
        task_state change without one ends the instance's request.
        ``faults=False``: the row returned without its faults (one
        statement fewer), as :meth:`instance_get` gives it.
        """
        table = models.Instance.__table__
        values = dict(values)
        unknown = set(values) - set(table.c.keys())
        if unknown:  # the SET clause is made of the known ones only
            raise ValueError('not columns of instances: %s' % sorted(unknown))
        values.setdefault('updated_at', models.utcnow())
        params = {'e_uuid': instance_uuid, **values}
        no_task = None
        if expected_vm_state is not None:
            params['e_vm_states'] = list(expected_vm_state)
        if expected_claimed_host is not None:
            params['e_claimed_host'] = expected_claimed_host
        if expected_task_state is not _UNSET:
            expected = (expected_task_state
                        if isinstance(expected_task_state, (list, tuple))
                        else [expected_task_state])
            params['e_task_states'] = [t for t in expected if t]
            no_task = None in expected
        query = _update_statement(expected_vm_state is not None,
                                  expected_claimed_host is not None, no_task)
        with self.session() as session:
            connection = session.connection()
            if connection.execute(query, params).rowcount != 1:
                current = connection.execute(_instance_by_uuid(False), {
                    'i_uuid': instance_uuid}).first()
                if current is None:
                    raise exception.InstanceNotFound(instance_id=instance_uuid)
                if (expected_vm_state is not None and
                        current.vm_state not in expected_vm_state):
                    attr, state = 'vm_state', current.vm_state
                elif (expected_claimed_host is not None and
                      current.claimed_host != expected_claimed_host):
                    attr, state = 'claimed host', current.claimed_host
                else:
                    attr, state = 'task_state', current.task_state
                raise exception.InstanceInvalidState(
                    action=action, instance_uuid=instance_uuid, attr=attr,
                    state=state)
            if system_metadata:
                _set_system_metadata(connection, instance_uuid,
                                     system_metadata)
            if fault is not None:
                session.add(fault.row(instance_uuid))
            if request is not None:
                requests.replace(session, instance_uuid, request)
            elif 'task_state' in values:
                requests.settle(session, instance_uuid, values['task_state'])
            session.flush()
            # Read back in the same transaction: the row exactly as this
            # update left it, not as a later request may have changed it.
            return _instances(connection, _instance_by_uuid(False),
                              {'i_uuid': instance_uuid}, faults=faults)[0]

    def instance_fault_create(self, instance_uuid: str, code: int,
                              message: str, details: str | None = None,
                              host: str | None = None) -> None:
        self.instance_fault_add(instance_uuid,
                                Fault(code, message, details, host))

    def instance_fault_add(self, instance_uuid: str, fault: Fault) -> None:
        with self.session() as session:
            session.add(fault.row(instance_uuid))

    def instance_mark_deleted(self, instance_uuid: str) -> None:
        """Soft-delete, as Nova: the row stays for audit until purged."""
        now = models.utcnow()
        with self.session() as session:
            session.execute(
                sa.update(models.Instance)
                .where(models.Instance.uuid == instance_uuid,
                       models.Instance.deleted_at.is_(None))
                .values(vm_state='deleted', task_state=None, host=None,
                        deleted_at=now, terminated_at=now, updated_at=now))
            requests.settle(session, instance_uuid, None)

