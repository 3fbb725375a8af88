"""Host aggregates and the storage groups they define."""

import contextlib
import functools
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy import orm

from lifecycle import exception
from lifecycle import storage_groups
from lifecycle.db import models
from lifecycle import names


@functools.cache
def _membership_queries(of_hosts: bool) -> tuple:
    """The three statements of :meth:`AggregatesMixin.aggregate_memberships`
    (aggregates, their hosts, their metadata), for every aggregate or for
    the aggregates of the hosts bound as ``hosts``; built once, as the
    scheduler runs them at every decision (see
    ``lifecycle.db.hosts._claim_statements``)."""
    member = models.AggregateHost.__table__
    meta = models.AggregateMetadata.__table__
    agg = models.Aggregate.__table__
    members_q = sa.select(member.c.aggregate_id, member.c.host)
    aggs_q = sa.select(agg.c.id, agg.c.name).order_by(agg.c.id)
    meta_q = sa.select(meta.c.aggregate_id, meta.c.key,
                       meta.c.value).order_by(meta.c.id)
    if of_hosts:
        ids = (sa.select(member.c.aggregate_id)
               .where(member.c.host.in_(sa.bindparam('hosts', expanding=True)))
               .scalar_subquery())
        members_q = members_q.where(member.c.aggregate_id.in_(ids))
        aggs_q = aggs_q.where(agg.c.id.in_(ids))
        meta_q = meta_q.where(meta.c.aggregate_id.in_(ids))
    return aggs_q, members_q, meta_q


@functools.cache
def _aggregate_fingerprint_query() -> sa.Select:
    """The statement of :meth:`AggregatesMixin.aggregate_fingerprint`,
    built once (the scheduler's host state cache runs it before every
    boot's decision): one statement, one round trip."""
    agg = models.Aggregate.__table__
    member = models.AggregateHost.__table__
    meta = models.AggregateMetadata.__table__

    def scalar(*columns):
        return [sa.select(column).scalar_subquery() for column in columns]

    return sa.select(
        *scalar(sa.func.count(agg.c.id), sa.func.max(agg.c.id),
                sa.func.max(sa.func.coalesce(agg.c.updated_at,
                                             agg.c.created_at))),
        *scalar(sa.func.count(member.c.id), sa.func.max(member.c.id),
                sa.func.sum(member.c.aggregate_id)),
        *scalar(sa.func.count(meta.c.id), sa.func.max(meta.c.id)))


class AggregatesMixin:
    """Part of :class:`lifecycle.db.api.Database`."""

    # -- aggregates -------------------------------------------------------
    #
    # Host aggregates as Nova keeps them, with the storage-group rules of
    # this project checked in the same transaction as each change, so a
    # refused request changes nothing:
    # - ``storage_group`` values are safe directory names
    #   (lifecycle.storage_groups.validate_name);
    # - a host is in at most one storage group, though in any number of
    #   aggregates;
    # - no change may leave a storage group that holds retained disks
    #   without any host (its disks could not be unshelved any more).
    # Aggregate changes are serialized (see _aggregate_session) so that two
    # concurrent requests cannot both pass a check the other one breaks.

    _AGGREGATE_LOCK = 'lifecycle.aggregates'
    # pg_advisory_xact_lock key: any constant shared by every process.
    _AGGREGATE_LOCK_KEY = 0x6c63616767  # "lcagg"

    @contextlib.contextmanager
    def _aggregate_session(self) -> Iterator[orm.Session]:
        """A transaction holding the database-wide aggregate lock.

        SQLite: every write transaction already starts with BEGIN
        IMMEDIATE, which serializes writers. PostgreSQL: a transaction-level
        advisory lock. MySQL/MariaDB: a named lock (GET_LOCK) held by the
        connection around the transaction.
        """
        dialect = self.engine.dialect.name
        if dialect not in ('mysql', 'mariadb'):
            with self.session() as session:
                if dialect == 'postgresql':
                    session.execute(
                        sa.text('SELECT pg_advisory_xact_lock(:k)'),
                        {'k': self._AGGREGATE_LOCK_KEY})
                yield session
            return
        with self.engine.connect() as conn:
            got = conn.execute(sa.text('SELECT GET_LOCK(:n, 60)'),
                               {'n': self._AGGREGATE_LOCK}).scalar()
            conn.commit()
            if got != 1:
                raise exception.Conflict(
                    reason='timed out waiting for another aggregate change')
            try:
                session = orm.Session(bind=conn, expire_on_commit=False)
                with session, session.begin():
                    yield session
            finally:
                conn.execute(sa.text('SELECT RELEASE_LOCK(:n)'),
                             {'n': self._AGGREGATE_LOCK})
                conn.commit()

    @staticmethod
    def _aggregate_in(session: orm.Session,
                      aggregate_id: int) -> models.Aggregate:
        aggregate = session.get(models.Aggregate, aggregate_id)
        if aggregate is None:
            raise exception.AggregateNotFound(aggregate_id=aggregate_id)
        return aggregate

    @staticmethod
    def _check_aggregate_name(session: orm.Session, name: str,
                              own_id: int | None = None) -> None:
        query = sa.select(models.Aggregate.id).where(
            models.Aggregate.name == name)
        if own_id is not None:
            query = query.where(models.Aggregate.id != own_id)
        if session.scalars(query).first() is not None:
            raise exception.AggregateNameExists(aggregate_name=name)

    @staticmethod
    def _metadata_of_hosts(session: orm.Session, key: str,
                           hosts: Iterable[str],
                           exclude_aggregate_id: int | None = None
                           ) -> list[tuple[str, str, int]]:
        """(host, value, aggregate id) of ``key`` in the hosts' other
        aggregates."""
        meta = models.AggregateMetadata
        agg_host = models.AggregateHost
        query = (sa.select(agg_host.host, meta.value, meta.aggregate_id)
                 .join(meta, meta.aggregate_id == agg_host.aggregate_id)
                 .where(agg_host.host.in_(list(hosts)), meta.key == key)
                 .order_by(meta.aggregate_id, agg_host.host))
        if exclude_aggregate_id is not None:
            query = query.where(agg_host.aggregate_id != exclude_aggregate_id)
        return [tuple(row) for row in session.execute(query)]

    @staticmethod
    def _retained_disk_count(session: orm.Session, group: str) -> int:
        """Live instances whose retained root disk is in ``group``."""
        inst = models.Instance
        group_meta = orm.aliased(models.InstanceSystemMetadata)
        disk_meta = orm.aliased(models.InstanceSystemMetadata)
        return session.scalar(
            sa.select(sa.func.count()).select_from(inst)
            .join(group_meta, sa.and_(
                group_meta.instance_uuid == inst.uuid,
                group_meta.key == names.SHELVED_STORAGE_GROUP,
                group_meta.value == group))
            .join(disk_meta, sa.and_(
                disk_meta.instance_uuid == inst.uuid,
                disk_meta.key == names.SHELVED_DISK,
                disk_meta.value.is_not(None), disk_meta.value != ''))
            .where(inst.deleted_at.is_(None))) or 0

    def _check_group_keeps_a_host(self, session: orm.Session, group: str,
                                  leaving: set[tuple[int, str]],
                                  what: str) -> None:
        """Refuse a change that removes the (aggregate id, host) pairs
        ``leaving`` from ``group`` when no host would remain in the group
        while it still holds retained disks."""
        meta = models.AggregateMetadata
        agg_host = models.AggregateHost
        members = set(session.execute(
            sa.select(agg_host.aggregate_id, agg_host.host)
            .join(meta, meta.aggregate_id == agg_host.aggregate_id)
            .where(meta.key == names.AGGREGATE_STORAGE_GROUP,
                   meta.value == group)))
        remaining = {host for agg_id, host in members
                     if (agg_id, host) not in leaving}
        if remaining:
            return
        count = self._retained_disk_count(session, group)
        if count:
            raise exception.StorageGroupInUse(
                group=group, count=count,
                reason='%s would leave the group without any host' % what)

    def _check_az(self, session: orm.Session, aggregate: models.Aggregate,
                  new_az: str | None, hosts: list[str], error,
                  check_instances: bool) -> None:
        """Nova's ``AggregateAPI.is_safe_to_update_az``."""
        if not new_az:
            raise error(aggregate_id=aggregate.id,
                        reason='Aggregate %s does not support empty named '
                               'availability zone' % aggregate.name)
        conflicting = sorted({
            value for _host, value, _agg in self._metadata_of_hosts(
                session, 'availability_zone', hosts, aggregate.id)
            if value != new_az})
        if conflicting:
            raise error(aggregate_id=aggregate.id,
                        reason='One or more hosts already in availability '
                               'zone(s) %s' % conflicting)
        if (check_instances and hosts and
                aggregate.metadata_dict.get('availability_zone') != new_az and
                self._instance_count_on_hosts(session, hosts)):
            raise error(aggregate_id=aggregate.id,
                        reason='One or more hosts contain instances in this '
                               'zone')

    @staticmethod
    def _instance_count_on_hosts(session: orm.Session,
                                 hosts: list[str]) -> int:
        inst = models.Instance
        return session.scalar(
            sa.select(sa.func.count()).select_from(inst)
            .where(inst.host.in_(hosts), inst.deleted_at.is_(None))) or 0

    def _az_of_host(self, session: orm.Session, host: str,
                    exclude_aggregate_id: int | None = None) -> str | None:
        zones = {value for _h, value, _a in self._metadata_of_hosts(
            session, 'availability_zone', [host], exclude_aggregate_id)}
        return sorted(zones)[0] if zones else None

    def _check_storage_group_of_hosts(self, session: orm.Session,
                                      aggregate_id: int, group: str,
                                      hosts: Iterable[str]) -> None:
        """Each host may be in one storage group only."""
        for host, other, other_id in self._metadata_of_hosts(
                session, names.AGGREGATE_STORAGE_GROUP, hosts, aggregate_id):
            if other != group:
                raise exception.HostInOtherStorageGroup(
                    host=host, group=other, aggregate_id=other_id)

    def _check_new_metadata(self, session: orm.Session,
                            aggregate: models.Aggregate | None,
                            updates: dict) -> None:
        """Storage-group rules for metadata about to be set (values of None
        delete keys)."""
        if updates.get(storage_groups.CAPACITY_KEY) is not None:
            try:
                storage_groups.validate_capacity(
                    updates[storage_groups.CAPACITY_KEY])
            except exception.InvalidInput as e:
                raise exception.InvalidAggregateActionUpdateMeta(
                    aggregate_id=aggregate.id if aggregate else None,
                    reason=e.kwargs.get('reason')) from None
        if storage_groups.GROUP_KEY not in updates:
            return
        new = updates[storage_groups.GROUP_KEY]
        if new is not None:
            storage_groups.validate_name(new)
        if aggregate is None:
            return
        old = aggregate.metadata_dict.get(storage_groups.GROUP_KEY)
        if new is not None and new != old:
            self._check_storage_group_of_hosts(
                session, aggregate.id, new, aggregate.host_names)
        if old is not None and old != new:
            self._check_group_keeps_a_host(
                session, old,
                {(aggregate.id, host) for host in aggregate.host_names},
                'moving the hosts of aggregate %s (%s) out of it' % (
                    aggregate.id, ', '.join(aggregate.host_names)))

    @staticmethod
    def _apply_metadata(aggregate: models.Aggregate, updates: dict) -> None:
        items = {m.key: m for m in aggregate.metadata_items}
        for key, value in updates.items():
            item = items.get(key)
            if value is None:
                if item is not None:
                    aggregate.metadata_items.remove(item)
            elif item is not None:
                if item.value != value:
                    # A new row rather than an update: the new id tells
                    # the scheduler's cache that metadata changed even
                    # where timestamps have whole seconds (MySQL DATETIME).
                    aggregate.metadata_items.remove(item)
                    orm.object_session(aggregate).flush()
                    aggregate.metadata_items.append(
                        models.AggregateMetadata(key=key, value=value))
            else:
                aggregate.metadata_items.append(
                    models.AggregateMetadata(key=key, value=value))
        aggregate.updated_at = models.utcnow()

    def aggregate_create(self, name: str, metadata: dict | None = None,
                         uuid: str | None = None) -> models.Aggregate:
        """Create an aggregate; AggregateNameExists when the name is
        taken, InvalidStorageGroup for a bad ``storage_group``."""
        from oslo_utils import uuidutils
        metadata = {k: v for k, v in (metadata or {}).items()
                    if v is not None}
        aggregate = models.Aggregate(
            name=name, uuid=uuid or uuidutils.generate_uuid(), hosts=[],
            metadata_items=[models.AggregateMetadata(key=k, value=v)
                            for k, v in metadata.items()])
        with self._aggregate_session() as session:
            self._check_aggregate_name(session, name)
            self._check_new_metadata(session, None, metadata)
            session.add(aggregate)
        return aggregate

    def aggregate_get(self, aggregate_id: int) -> models.Aggregate:
        with self.session(readonly=True) as session:
            return self._aggregate_in(session, aggregate_id)

    def aggregate_get_all(self) -> list[models.Aggregate]:
        with self.session(readonly=True) as session:
            return list(session.scalars(sa.select(models.Aggregate)
                                        .order_by(models.Aggregate.id)))

    def aggregate_update(self, aggregate_id: int,
                         values: dict) -> models.Aggregate:
        """Nova's update: ``name`` and/or ``availability_zone`` (kept as
        metadata). Unlike Nova, a refused zone leaves the name unchanged."""
        with self._aggregate_session() as session:
            aggregate = self._aggregate_in(session, aggregate_id)
            if 'name' in values:
                self._check_aggregate_name(session, values['name'],
                                           aggregate.id)
            if 'availability_zone' in values:
                self._check_az(session, aggregate,
                               values['availability_zone'],
                               aggregate.host_names,
                               exception.InvalidAggregateActionUpdate,
                               check_instances=True)
            if 'name' in values:
                aggregate.name = values['name']
            if 'availability_zone' in values:
                self._apply_metadata(aggregate, {
                    'availability_zone': values['availability_zone']})
            aggregate.updated_at = models.utcnow()
        return aggregate

    def aggregate_set_metadata(self, aggregate_id: int,
                               updates: dict) -> models.Aggregate:
        """Set keys, delete those given None (Nova's update_metadata), after
        the availability-zone and storage-group checks."""
        with self._aggregate_session() as session:
            aggregate = self._aggregate_in(session, aggregate_id)
            if 'availability_zone' in updates:
                self._check_az(session, aggregate,
                               updates['availability_zone'],
                               aggregate.host_names,
                               exception.InvalidAggregateActionUpdateMeta,
                               check_instances=True)
            self._check_new_metadata(session, aggregate, updates)
            self._apply_metadata(aggregate, updates)
        return aggregate

    def aggregate_delete(self, aggregate_id: int) -> None:
        """Delete an aggregate without hosts (Nova refuses the others)."""
        with self._aggregate_session() as session:
            aggregate = self._aggregate_in(session, aggregate_id)
            if aggregate.hosts:
                raise exception.InvalidAggregateActionDelete(
                    aggregate_id=aggregate_id,
                    reason='Host aggregate is not empty')
            session.delete(aggregate)

    def aggregate_add_host(self, aggregate_id: int, host: str, *,
                           check_host: bool = False) -> models.Aggregate:
        """Add ``host``; with ``check_host`` it must be a known compute
        host (ComputeHostNotFound). AggregateHostExists when it is a member,
        InvalidAggregateActionAdd for a zone conflict,
        HostInOtherStorageGroup when it would join a second storage
        group."""
        with self._aggregate_session() as session:
            if check_host and session.scalars(
                    sa.select(models.ComputeNode.id).where(
                        models.ComputeNode.host == host)).first() is None:
                raise exception.ComputeHostNotFound(host=host)
            aggregate = self._aggregate_in(session, aggregate_id)
            if host in aggregate.host_names:
                raise exception.AggregateHostExists(aggregate_id=aggregate_id,
                                                    host=host)
            metadata = aggregate.metadata_dict
            new_az = metadata.get('availability_zone')
            if 'availability_zone' in metadata:
                self._check_az(session, aggregate, new_az, [host],
                               exception.InvalidAggregateActionAdd,
                               check_instances=False)
            if new_az:
                old_az = self._az_of_host(session, host)
                count = self._instance_count_on_hosts(session, [host])
                if old_az != new_az and count:
                    raise exception.InvalidAggregateActionAdd(
                        aggregate_id=aggregate_id,
                        reason=self._az_move_reason('added to', old_az,
                                                    new_az, count))
            group = metadata.get(names.AGGREGATE_STORAGE_GROUP)
            if group is not None:
                self._check_storage_group_of_hosts(session, aggregate_id,
                                                   group, [host])
            aggregate.hosts.append(models.AggregateHost(host=host))
            aggregate.updated_at = models.utcnow()
        return aggregate

    @staticmethod
    def _az_move_reason(verb: str, old: str | None, new: str | None,
                        count: int) -> str:
        return ("The host cannot be %s the aggregate as the availability "
                "zone of the host would change from '%s' to '%s' but the "
                "host already has %d instance(s). Changing the AZ of an "
                "existing instance is not supported by this action. Move the "
                "instances away from this host then try again. If you need "
                "to move the instances between AZs then you can use "
                "shelve_offload and unshelve to achieve this." % (
                    verb, old, new, count))

    def aggregate_remove_host(self, aggregate_id: int,
                              host: str) -> models.Aggregate:
        """Remove ``host``: AggregateHostNotFound when it is no member,
        InvalidAggregateActionDelete when its instances would change zone,
        StorageGroupInUse when it is the last host of a storage group that
        holds retained disks."""
        with self._aggregate_session() as session:
            aggregate = self._aggregate_in(session, aggregate_id)
            member = next((h for h in aggregate.hosts if h.host == host),
                          None)
            if member is None:
                raise exception.AggregateHostNotFound(
                    aggregate_id=aggregate_id, host=host)
            metadata = aggregate.metadata_dict
            current_az = metadata.get('availability_zone')
            if current_az:
                new_az = self._az_of_host(session, host, aggregate_id)
                count = self._instance_count_on_hosts(session, [host])
                if new_az != current_az and count:
                    raise exception.InvalidAggregateActionDelete(
                        aggregate_id=aggregate_id,
                        reason=self._az_move_reason(
                            'removed from', current_az, new_az, count))
            group = metadata.get(names.AGGREGATE_STORAGE_GROUP)
            if group is not None:
                self._check_group_keeps_a_host(
                    session, group, {(aggregate_id, host)},
                    'removing host %s from aggregate %s' % (host,
                                                            aggregate_id))
            aggregate.hosts.remove(member)
            aggregate.updated_at = models.utcnow()
        return aggregate

    # -- what the scheduler reads ------------------------------------------

    def aggregate_fingerprint(self, session: orm.Session | None = None
                              ) -> tuple:
        """A summary of the aggregates that changes with every change of
        aggregates, their hosts or their metadata: counts, max ids (a new
        host or metadata row always has a new id; a changed metadata value
        is a new row) and the last change time (every change sets the
        aggregate's ``updated_at`` under the aggregate lock)."""
        with self._reading(session) as reader:
            row = reader.execute(_aggregate_fingerprint_query()).one()
        # Plain ints for the sums (drivers may return Decimal).
        return (*row[:5], int(row[5] or 0), *row[6:])

    def aggregate_memberships(self, hosts: Iterable[str] | None = None,
                              session: orm.Session | None = None
                              ) -> list[tuple[int, str, list[str], dict]]:
        """(id, name, sorted host names, metadata) of every aggregate (only
        those holding one of ``hosts``, when given), ordered by id; plain
        values read with three small queries, no ORM objects."""
        params = {}
        if hosts is not None:
            params['hosts'] = list(hosts)
            if not params['hosts']:
                return []
        aggs_q, members_q, meta_q = _membership_queries(bool(params))
        with self._reading(session) as reader:
            aggregates = list(reader.execute(aggs_q, params))
            members = list(reader.execute(members_q, params))
            metadata_rows = list(reader.execute(meta_q, params))
        hosts_of: dict[int, list[str]] = {}
        for agg_id, host in members:
            hosts_of.setdefault(agg_id, []).append(host)
        metadata: dict[int, dict[str, str]] = {}
        for agg_id, key, value in metadata_rows:
            metadata.setdefault(agg_id, {})[key] = value
        return [(agg_id, name, sorted(hosts_of.get(agg_id, [])),
                 metadata.get(agg_id, {}))
                for agg_id, name in aggregates]

    def storage_group_of_host(self, host: str) -> str | None:
        """The ``storage_group`` metadata of the host's aggregates."""
        meta = models.AggregateMetadata
        with self.session(readonly=True) as session:
            groups = set(session.scalars(
                sa.select(meta.value)
                .join(models.AggregateHost,
                      models.AggregateHost.aggregate_id == meta.aggregate_id)
                .where(models.AggregateHost.host == host,
                       meta.key == names.AGGREGATE_STORAGE_GROUP)))
        if len(groups) > 1:
            raise exception.InvalidConfiguration(
                reason='host %s is in several storage groups: %s' %
                (host, ', '.join(sorted(groups))))
        return groups.pop() if groups else None

    def hosts_in_storage_group(self, group: str) -> list[str]:
        meta = models.AggregateMetadata
        with self.session() as session:
            return sorted(set(session.scalars(
                sa.select(models.AggregateHost.host)
                .join(meta, models.AggregateHost.aggregate_id ==
                      meta.aggregate_id)
                .where(meta.key == names.AGGREGATE_STORAGE_GROUP,
                       meta.value == group))))

    def storage_group_names(self) -> list[str]:
        """Every ``storage_group`` named by an aggregate."""
        meta = models.AggregateMetadata
        with self.session() as session:
            return sorted(set(session.scalars(
                sa.select(meta.value).where(
                    meta.key == names.AGGREGATE_STORAGE_GROUP))))

    def storage_group_retained_disks(self, group: str | None = None
                                     ) -> list[tuple[str, str]]:
        """(instance uuid, storage group) of every live instance with a
        retained disk in a storage group (``group`` only, when given)."""
        inst = models.Instance
        group_meta = orm.aliased(models.InstanceSystemMetadata)
        disk_meta = orm.aliased(models.InstanceSystemMetadata)
        query = (sa.select(inst.uuid, group_meta.value)
                 .join(group_meta, sa.and_(
                     group_meta.instance_uuid == inst.uuid,
                     group_meta.key == names.SHELVED_STORAGE_GROUP,
                     group_meta.value.is_not(None), group_meta.value != ''))
                 .join(disk_meta, sa.and_(
                     disk_meta.instance_uuid == inst.uuid,
                     disk_meta.key == names.SHELVED_DISK,
                     disk_meta.value.is_not(None), disk_meta.value != ''))
                 .where(inst.deleted_at.is_(None))
                 .order_by(inst.uuid))
        if group is not None:
            query = query.where(group_meta.value == group)
        with self.session() as session:
            return [tuple(row) for row in session.execute(query)]

    def storage_group_paths(self, group: str) -> list[str]:
        """The ``storage_path`` the hosts of ``group`` report, each once."""
        node = models.ComputeNode
        hosts = self.hosts_in_storage_group(group)
        if not hosts:
            return []
        with self.session() as session:
            return sorted(set(session.scalars(
                sa.select(node.storage_path)
                .where(node.host.in_(hosts),
                       node.storage_path.is_not(None)))))

