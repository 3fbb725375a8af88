"""Compute hosts and the capacity claims on them."""

import contextlib
import datetime
import functools
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy import orm

from lifecycle import exception
from lifecycle import names
from lifecycle.db import instances
from lifecycle.db import models
from lifecycle.db import requests


def _changed_at() -> sa.ColumnElement:
    """When a compute node row was last written."""
    node = models.ComputeNode.__table__
    return sa.func.coalesce(node.c.updated_at, node.c.created_at)


@functools.cache
def _node_states_query(given: frozenset) -> sa.Select:
    """The statement of :meth:`HostsMixin.compute_node_states` for the
    filters ``given`` (bound by name), built once per combination: the
    scheduler runs it at every decision (see :func:`_claim_statements`)."""
    node = models.ComputeNode.__table__
    changed_at = _changed_at()
    query = sa.select(
        node.c.id, node.c.host, node.c.vcpus, node.c.vcpus_used,
        node.c.memory_mb, node.c.reserved_memory_mb, node.c.memory_mb_used,
        node.c.cpu_allocation_ratio, node.c.ram_allocation_ratio,
        node.c.disabled, node.c.last_seen_at,
        changed_at.label('changed_at')).order_by(node.c.id)
    if 'hosts' in given:
        query = query.where(node.c.host.in_(
            sa.bindparam('hosts', expanding=True)))
    if 'storage_group' in given:
        member = models.AggregateHost.__table__
        meta = models.AggregateMetadata.__table__
        query = query.where(node.c.host.in_(
            sa.select(member.c.host)
            .join(meta, member.c.aggregate_id == meta.c.aggregate_id)
            .where(meta.c.key == names.AGGREGATE_STORAGE_GROUP,
                   meta.c.value == sa.bindparam('storage_group'))))
    if 'up_since' in given:
        query = query.where(node.c.disabled.is_(False),
                            node.c.last_seen_at >= sa.bindparam('up_since'))
    if 'changed_since' in given:
        query = query.where(changed_at >= sa.bindparam('changed_since'))
    return query


def _down() -> sa.ColumnElement[bool]:
    """A compute node that is not to be scheduled to: disabled, or not seen
    at or after the bound ``up_since``."""
    node = models.ComputeNode.__table__
    return sa.or_(node.c.disabled.is_(True), node.c.last_seen_at.is_(None),
                  node.c.last_seen_at < sa.bindparam('up_since'))


@functools.cache
def _node_fingerprint_query(columns: tuple[str, ...]) -> sa.Select:
    """The statement of :meth:`HostsMixin.compute_node_fingerprint`, built
    once: the scheduler's host state cache runs it before every boot's
    decision, and building it (and its cache key) at each call cost more
    than SQLite's scan of 1,000 rows."""
    node = models.ComputeNode.__table__
    # 64-bit products: id * memory_mb overflows PostgreSQL's integer.
    weight = sa.cast(node.c.id, sa.BigInteger)
    sums = []
    for name in columns:
        column = node.c[name]
        if name == 'disabled':
            column = sa.case((column.is_(True), 1), else_=0)
        sums.append(sa.func.sum(weight * column))
    sums += [sa.func.sum(node.c.id * node.c.cpu_allocation_ratio),
             sa.func.sum(node.c.id * node.c.ram_allocation_ratio)]
    down = _down()
    # The ids of the down nodes, in the same scan: usually none or a few.
    # Their count and sum tell a list that MySQL's group_concat_max_len
    # (1,024 bytes by default there) cut short.
    down_ids = [
        sa.func.count(sa.case((down, node.c.id), else_=sa.null())),
        sa.func.sum(sa.case((down, weight), else_=0)),
        sa.func.aggregate_strings(
            sa.case((down, sa.cast(node.c.id, sa.String(20))),
                    else_=sa.null()), ',')]
    return sa.select(sa.func.count(node.c.id), sa.func.max(node.c.id),
                     sa.func.max(_changed_at()), *sums, *down_ids)


@functools.cache
def _down_nodes_query() -> sa.Select:
    """The ids of the down nodes alone (see _node_fingerprint_query)."""
    return sa.select(models.ComputeNode.__table__.c.id).where(_down())


def _claim_statements() -> tuple:
    """The three statements of :meth:`HostsMixin.claim`, built once: a
    claim is on the hot path of every boot and unshelve, and building the
    expressions and their cache keys at each call cost as much as running
    them on SQLite. Core statements (no ORM session synchronisation: the
    session holds no objects)."""
    node = models.ComputeNode.__table__
    inst = models.Instance.__table__
    vcpus = sa.bindparam('c_vcpus', type_=sa.Integer)
    memory_mb = sa.bindparam('c_memory_mb', type_=sa.Integer)
    host = sa.bindparam('c_host', type_=sa.String)
    uuid = sa.bindparam('c_uuid', type_=sa.String)
    read = (sa.select(inst.c.vcpus, inst.c.memory_mb, inst.c.claimed_host)
            .where(inst.c.uuid == uuid, inst.c.deleted_at.is_(None)))
    take = (sa.update(node)
            .where(node.c.host == host,
                   node.c.vcpus_used + vcpus <=
                   node.c.vcpus * node.c.cpu_allocation_ratio,
                   node.c.memory_mb_used + memory_mb <=
                   (node.c.memory_mb - node.c.reserved_memory_mb) *
                   node.c.ram_allocation_ratio)
            .values(vcpus_used=node.c.vcpus_used + vcpus,
                    memory_mb_used=node.c.memory_mb_used + memory_mb,
                    running_vms=node.c.running_vms + 1))
    mark = (sa.update(inst)
            .where(inst.c.uuid == uuid, inst.c.claimed_host.is_(None))
            .values(claimed_host=host, host=host))
    return read, take, mark


_CLAIM_READ, _CLAIM_TAKE, _CLAIM_MARK = _claim_statements()


class HostsMixin:
    """Part of :class:`lifecycle.db.api.Database`."""

    # -- compute nodes ----------------------------------------------------

    def compute_node_report(self, host: str,
                            values: dict) -> models.ComputeNode:
        """Create or refresh a host's capacity and heartbeat.

        Usage counters are never written here: only claims change them. A
        report that changes nothing but the heartbeat (``last_seen_at``)
        leaves ``updated_at`` as it was: a compute node's ``updated_at``
        says when something the scheduler keeps in its host states last
        changed, and HostStateCache re-reads the rows written since its
        last read -- with every host heartbeating every ``[compute]
        report_interval`` seconds, that was 20 % of all rows at each
        decision. Up or down is read from ``last_seen_at`` at each decision
        instead (:meth:`compute_node_fingerprint`).
        """
        now = models.utcnow()
        table = models.ComputeNode.__table__
        with self.session() as session:
            node = session.scalars(sa.select(models.ComputeNode).where(
                models.ComputeNode.host == host)).first()
            if node is None:
                node = models.ComputeNode(host=host, last_seen_at=now,
                                          **values)
                session.add(node)
            elif all(getattr(node, key) == value
                     for key, value in values.items()):
                # Naming updated_at in the SET clause keeps its onupdate
                # from firing.
                session.execute(
                    sa.update(table).where(table.c.id == node.id)
                    .values(last_seen_at=now, updated_at=table.c.updated_at))
                orm.attributes.set_committed_value(node, 'last_seen_at', now)
            else:
                for key, value in dict(values, last_seen_at=now).items():
                    setattr(node, key, value)
        return node

    def compute_node_report_storage(self, host: str, values: dict) -> None:
        """Record what ``host`` measured of its storage group's storage
        (``storage_*`` columns; ``storage_reported_at`` is set here)."""
        node = models.ComputeNode
        values = dict(values, storage_reported_at=models.utcnow(),
                      # nothing the scheduler reads (see compute_node_report)
                      updated_at=node.updated_at)
        with self.session() as session:
            session.execute(sa.update(node).where(node.host == host)
                            .values(**values))

    def storage_group_report(self, group: str, *,
                             up_since: datetime.datetime,
                             reported_since: datetime.datetime
                             ) -> models.ComputeNode | None:
        """The freshest storage report of a host of ``group`` that is up
        (heartbeat at or after ``up_since``) and reported at or after
        ``reported_since``; None when there is none."""
        node = models.ComputeNode
        meta = models.AggregateMetadata
        with self.session(readonly=True) as session:
            return session.scalars(
                sa.select(node).where(
                    node.host.in_(
                        sa.select(models.AggregateHost.host)
                        .join(meta, models.AggregateHost.aggregate_id ==
                              meta.aggregate_id)
                        .where(meta.key == names.AGGREGATE_STORAGE_GROUP,
                               meta.value == group)),
                    node.last_seen_at >= up_since,
                    node.storage_reported_at >= reported_since)
                .order_by(node.storage_reported_at.desc())).first()

    def compute_node_get(self, host: str) -> models.ComputeNode:
        with self.session(readonly=True) as session:
            node = session.scalars(sa.select(models.ComputeNode).where(
                models.ComputeNode.host == host)).first()
        if node is None:
            raise exception.ComputeHostNotFound(host=host)
        return node

    def compute_node_get_all(self) -> list[models.ComputeNode]:
        with self.session(readonly=True) as session:
            return list(session.scalars(sa.select(models.ComputeNode)
                                        .order_by(models.ComputeNode.id)))

    # -- what the scheduler reads ------------------------------------------
    #
    # Plain rows (no ORM objects): the scheduler builds its HostStates from
    # these, per request for the few hosts a request can use, and keeps the
    # rest cached (lifecycle.conductor.scheduler.HostStateCache).

    @contextlib.contextmanager
    def _reading(self, session: orm.Session | None) -> Iterator[orm.Session]:
        """``session`` when given (several reads in one transaction), else a
        transaction of its own."""
        if session is not None:
            yield session
        else:
            with self.session() as own:
                yield own

    def compute_node_states(self, *, hosts: Iterable[str] | None = None,
                            storage_group: str | None = None,
                            up_since: datetime.datetime | None = None,
                            changed_since: datetime.datetime | None = None,
                            session: orm.Session | None = None
                            ) -> list[sa.Row]:
        """Capacity rows of compute nodes, ordered by id: ``id, host,
        vcpus, vcpus_used, memory_mb, reserved_memory_mb, memory_mb_used,
        cpu_allocation_ratio, ram_allocation_ratio, disabled, last_seen_at,
        changed_at``.

        ``hosts``: only these; ``storage_group``: only hosts of an aggregate
        with that ``storage_group`` metadata; ``up_since``: only enabled
        hosts seen at or after it; ``changed_since``: only rows written
        (created, claimed, released, reported) at or after it.
        """
        params: dict = {}
        if hosts is not None:
            params['hosts'] = list(hosts)
            if not params['hosts']:
                return []
        if storage_group is not None:
            params['storage_group'] = storage_group
        if up_since is not None:
            params['up_since'] = up_since
        if changed_since is not None:
            params['changed_since'] = changed_since
        with self._reading(session) as reader:
            return list(reader.execute(
                _node_states_query(frozenset(params)), params))

    #: Columns summed, weighted by node id, in compute_node_fingerprint.
    FINGERPRINT_COLUMNS = ('vcpus', 'vcpus_used', 'memory_mb',
                           'memory_mb_used', 'reserved_memory_mb',
                           'disabled')

    def compute_node_fingerprint(self, up_since: datetime.datetime,
                                 session: orm.Session | None = None
                                 ) -> tuple[tuple, frozenset[int]]:
        """A cheap summary of compute_nodes, and the ids of the nodes that
        are down, in one scan.

        The summary changes when a node is added or removed, claimed,
        released, disabled or enabled, or reports a new capacity (not at a
        heartbeat alone; see :meth:`compute_node_report`): (count, max id,
        last write, then ``sum(id * column)`` for each of
        FINGERPRINT_COLUMNS (disabled as 0/1) -- weighted by id so that a
        claim on one host and a release on another do not cancel out --
        then the id-weighted sums of the two allocation ratios). Timestamps
        alone would not do: MySQL's have whole seconds. Down: disabled, or
        not seen at or after ``up_since``.
        """
        params = {'up_since': up_since}
        with self._reading(session) as reader:
            row = reader.execute(
                _node_fingerprint_query(self.FINGERPRINT_COLUMNS),
                params).one()
            down_count, down_sum, listed = row[-3:]
            down = frozenset(int(i) for i in (listed or '').split(',') if i)
            if len(down) != down_count or sum(down) != int(down_sum or 0):
                down = frozenset(reader.scalars(_down_nodes_query(), params))
        # Plain ints (drivers may return Decimal) for comparisons with the
        # sums the cache keeps; the ratio sums stay as the database gives.
        n = len(self.FINGERPRINT_COLUMNS)
        fingerprint = (row[0], row[1], row[2],
                       *(int(v or 0) for v in row[3:3 + n]), *row[3 + n:-3])
        return fingerprint, down

    def claim(self, instance_uuid: str, host: str) -> None:
        """Claim the instance's vCPU and RAM on ``host``, atomically.

        Succeeds at most once per instance until :meth:`release_claim`; a
        repeated claim on the same host is a no-op (resumed operations).
        Raises ClaimFailed when the host has not enough free capacity.
        """
        with self.session() as session:
            instance = session.execute(_CLAIM_READ,
                                       {'c_uuid': instance_uuid}).first()
            if instance is None:
                raise exception.InstanceNotFound(instance_id=instance_uuid)
            if instance.claimed_host == host:
                return
            if instance.claimed_host is not None:
                raise exception.Conflict(
                    reason='instance %s already holds a claim on host %s' %
                    (instance_uuid, instance.claimed_host))
            taken = session.execute(_CLAIM_TAKE, {
                'c_host': host, 'c_vcpus': instance.vcpus,
                'c_memory_mb': instance.memory_mb}).rowcount
            if taken != 1:
                raise exception.ClaimFailed(vcpus=instance.vcpus,
                                            memory_mb=instance.memory_mb,
                                            host=host)
            marked = session.execute(_CLAIM_MARK, {
                'c_uuid': instance_uuid, 'c_host': host}).rowcount
            if marked != 1:
                # Another claim won the race for this instance; the
                # exception rolls back our host update.
                raise exception.Conflict(
                    reason='instance %s was claimed concurrently' %
                    instance_uuid)

    def release_claim(self, instance_uuid: str, *,
                      only_host: str | None = None,
                      only_task_state: str | None = None,
                      values: dict | None = None,
                      fault: instances.Fault | None = None) -> str | None:
        """Give back the instance's claim, exactly once. Returns the host
        it was on, or None when the instance held no claim.

        ``only_host``/``only_task_state`` make the release conditional on
        the instance still holding that claim in that task (checked in the
        same UPDATE); ``values`` are written to the instance and ``fault``
        recorded with it, only when the release happens.
        """
        node = models.ComputeNode
        inst = models.Instance
        with self.session() as session:
            row = session.execute(
                sa.select(inst.vcpus, inst.memory_mb, inst.claimed_host)
                .where(inst.uuid == instance_uuid)).first()
            if row is None or row.claimed_host is None:
                return None
            if only_host is not None and row.claimed_host != only_host:
                return None
            query = sa.update(inst).where(
                inst.uuid == instance_uuid,
                inst.claimed_host == row.claimed_host)
            if only_task_state is not None:
                query = query.where(inst.task_state == only_task_state)
            cleared = session.execute(query.values(
                claimed_host=None, **(values or {}))).rowcount
            if cleared != 1:
                return None
            session.execute(
                sa.update(node).where(node.host == row.claimed_host)
                .values(vcpus_used=node.vcpus_used - row.vcpus,
                        memory_mb_used=node.memory_mb_used - row.memory_mb,
                        running_vms=node.running_vms - 1))
            if fault is not None:
                session.add(fault.row(instance_uuid))
            if values and 'task_state' in values:
                requests.settle(session, instance_uuid, values['task_state'])
        return row.claimed_host

