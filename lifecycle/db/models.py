"""SQLAlchemy models. Schema changes go through alembic migrations in
``lifecycle/db/migrations``; ``tests/unit/test_migrations.py`` checks the two
agree."""

import datetime

import sqlalchemy as sa
from sqlalchemy import orm
from taskflow.persistence.backends.sqlalchemy import tables as taskflow_tables


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


# Nova's instance_faults.message length.
FAULT_MESSAGE_LENGTH = 255


class Base(orm.DeclarativeBase):
    pass


class TimestampMixin:
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        sa.DateTime, default=utcnow)
    updated_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        sa.DateTime, onupdate=utcnow)


class Flavor(TimestampMixin, Base):
    __tablename__ = 'flavors'
    __table_args__ = (sa.UniqueConstraint('name', name='uniq_flavors0name'),
                      sa.UniqueConstraint('flavorid',
                                          name='uniq_flavors0flavorid'))

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    flavorid: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    name: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    vcpus: orm.Mapped[int]
    memory_mb: orm.Mapped[int]
    root_gb: orm.Mapped[int]
    ephemeral_gb: orm.Mapped[int] = orm.mapped_column(default=0)
    swap: orm.Mapped[int] = orm.mapped_column(default=0)
    is_public: orm.Mapped[bool] = orm.mapped_column(default=True)
    description: orm.Mapped[str | None] = orm.mapped_column(sa.Text)


class ComputeNode(TimestampMixin, Base):
    """A compute host, its capacity and its claimed usage.

    ``vcpus_used``/``memory_mb_used`` only change through the conditional
    updates in ``db.api`` (claim and release), so concurrent claims cannot
    overcommit a host.
    """
    __tablename__ = 'compute_nodes'
    __table_args__ = (sa.UniqueConstraint('host',
                                          name='uniq_compute_nodes0host'),)

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    hypervisor_hostname: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    hypervisor_type: orm.Mapped[str] = orm.mapped_column(sa.String(32))
    host_ip: orm.Mapped[str | None] = orm.mapped_column(sa.String(64))
    storage_path: orm.Mapped[str | None] = orm.mapped_column(sa.String(1024))
    vcpus: orm.Mapped[int]
    memory_mb: orm.Mapped[int]
    reserved_memory_mb: orm.Mapped[int] = orm.mapped_column(default=0)
    cpu_allocation_ratio: orm.Mapped[float] = orm.mapped_column(default=1.0)
    ram_allocation_ratio: orm.Mapped[float] = orm.mapped_column(default=1.0)
    vcpus_used: orm.Mapped[int] = orm.mapped_column(default=0)
    memory_mb_used: orm.Mapped[int] = orm.mapped_column(default=0)
    running_vms: orm.Mapped[int] = orm.mapped_column(default=0)
    disabled: orm.Mapped[bool] = orm.mapped_column(default=False)
    last_seen_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        sa.DateTime)
    # What the host sees of its storage group's storage (migration 0003;
    # lifecycle/storage_groups.py): for the deployments whose conductor and
    # API hosts do not mount it. ``storage_disk_bytes`` is a JSON object,
    # instance uuid -> allocated bytes of its retained disk.
    storage_capacity_bytes: orm.Mapped[int | None] = orm.mapped_column(
        sa.BigInteger)
    storage_free_bytes: orm.Mapped[int | None] = orm.mapped_column(
        sa.BigInteger)
    storage_used_bytes: orm.Mapped[int | None] = orm.mapped_column(
        sa.BigInteger)
    storage_disk_bytes: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    storage_reported_at: orm.Mapped[datetime.datetime | None] = (
        orm.mapped_column(sa.DateTime))


class Aggregate(TimestampMixin, Base):
    __tablename__ = 'aggregates'

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    uuid: orm.Mapped[str] = orm.mapped_column(sa.String(36), unique=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    hosts: orm.Mapped[list['AggregateHost']] = orm.relationship(
        cascade='all, delete-orphan', lazy='selectin')
    metadata_items: orm.Mapped[list['AggregateMetadata']] = orm.relationship(
        cascade='all, delete-orphan', lazy='selectin')

    @property
    def metadata_dict(self) -> dict[str, str]:
        return {m.key: m.value for m in self.metadata_items}

    @property
    def host_names(self) -> list[str]:
        return sorted(h.host for h in self.hosts)


class AggregateHost(Base):
    __tablename__ = 'aggregate_hosts'
    __table_args__ = (sa.UniqueConstraint(
        'aggregate_id', 'host',
        name='uniq_aggregate_hosts0aggregate_id0host'),)

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    aggregate_id: orm.Mapped[int] = orm.mapped_column(
        sa.ForeignKey('aggregates.id', ondelete='CASCADE'))
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255), index=True)


class AggregateMetadata(Base):
    __tablename__ = 'aggregate_metadata'
    __table_args__ = (sa.UniqueConstraint(
        'aggregate_id', 'key',
        name='uniq_aggregate_metadata0aggregate_id0key'),
        sa.Index('aggregate_metadata_key_idx', 'key'))

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    aggregate_id: orm.Mapped[int] = orm.mapped_column(
        sa.ForeignKey('aggregates.id', ondelete='CASCADE'))
    key: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    value: orm.Mapped[str] = orm.mapped_column(sa.String(255))


class Instance(TimestampMixin, Base):
    """An instance. ``host`` is where its resources are claimed (None when
    shelved_offloaded); the flavor's sizes are copied in so that later flavor
    changes do not change what an instance has claimed."""
    __tablename__ = 'instances'
    # The API's listings: a project's servers newest first, and the
    # servers changed since a time (updated_at, or created_at for those
    # never updated).
    __table_args__ = (sa.Index('instances_host_vm_state_idx', 'host',
                               'vm_state'),
                      sa.Index('instances_deleted_at_idx', 'deleted_at'),
                      sa.Index('instances_project_id_deleted_at_idx',
                               'project_id', 'deleted_at'),
                      sa.Index('instances_created_at_idx', 'created_at'),
                      sa.Index('instances_updated_at_idx', 'updated_at'))

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    uuid: orm.Mapped[str] = orm.mapped_column(sa.String(36), unique=True)
    display_name: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    user_id: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    project_id: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    image_ref: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    flavorid: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    flavor_name: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    vcpus: orm.Mapped[int]
    memory_mb: orm.Mapped[int]
    root_gb: orm.Mapped[int]
    vm_state: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    task_state: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    power_state: orm.Mapped[int] = orm.mapped_column(default=0)
    host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    # Set while this instance holds a claim on ``host``'s vCPU and RAM; the
    # release clears it in the same transaction, so it happens exactly once.
    claimed_host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    availability_zone: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(255))
    launched_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        sa.DateTime)
    terminated_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        sa.DateTime)
    deleted_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        sa.DateTime)

    metadata_items: orm.Mapped[list['InstanceMetadata']] = orm.relationship(
        cascade='all, delete-orphan', lazy='selectin')
    system_metadata_items: orm.Mapped[list['InstanceSystemMetadata']] = (
        orm.relationship(cascade='all, delete-orphan', lazy='selectin'))
    faults: orm.Mapped[list['InstanceFault']] = orm.relationship(
        cascade='all, delete-orphan', lazy='selectin',
        order_by='InstanceFault.id.desc()')

    @property
    def metadata_dict(self) -> dict[str, str]:
        return {m.key: m.value for m in self.metadata_items}

    @property
    def system_metadata(self) -> dict[str, str]:
        return {m.key: m.value for m in self.system_metadata_items}

    @property
    def fault(self) -> 'InstanceFault | None':
        return self.faults[0] if self.faults else None


class InstanceMetadata(Base):
    __tablename__ = 'instance_metadata'
    __table_args__ = (sa.UniqueConstraint(
        'instance_uuid', 'key', name='uniq_instance_metadata0uuid0key'),)

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.ForeignKey('instances.uuid', ondelete='CASCADE'))
    key: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    value: orm.Mapped[str] = orm.mapped_column(sa.String(255))


class InstanceSystemMetadata(Base):
    __tablename__ = 'instance_system_metadata'
    __table_args__ = (sa.UniqueConstraint(
        'instance_uuid', 'key', name='uniq_instance_system_metadata0uuid0key'),
        sa.Index('instance_system_metadata_key_value_idx', 'key', 'value'))

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.ForeignKey('instances.uuid', ondelete='CASCADE'))
    key: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    value: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))


class InstanceFault(Base):
    __tablename__ = 'instance_faults'

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.ForeignKey('instances.uuid', ondelete='CASCADE'), index=True)
    code: orm.Mapped[int]
    message: orm.Mapped[str] = orm.mapped_column(
        sa.String(FAULT_MESSAGE_LENGTH))
    details: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        sa.DateTime, default=utcnow)


class AcceptedRequest(Base):
    """The request that set an instance's current task, as the message that
    carries it out (``service``, ``host``, ``method``, ``args``).

    Written in the transaction that sets the task_state, deleted in the one
    that moves the task on (lifecycle/db/requests.py): a row is a request
    accepted and not yet done, whatever crashed since, so a service that
    starts again, or the conductor's periodic check, can send it again
    (lifecycle/requests.py). One per instance: the task_state compare-and-
    swap admits one task at a time.
    """
    __tablename__ = 'accepted_requests'
    __table_args__ = (sa.Index('accepted_requests_service_host_idx',
                               'service', 'host'),)

    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), sa.ForeignKey('instances.uuid', ondelete='CASCADE'),
        primary_key=True)
    task_state: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    service: orm.Mapped[str] = orm.mapped_column(sa.String(16))
    host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    method: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    args: orm.Mapped[str] = orm.mapped_column(sa.Text)
    context: orm.Mapped[str] = orm.mapped_column(sa.Text)
    accepted_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        sa.DateTime, default=utcnow)
    dispatched_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        sa.DateTime, default=utcnow)
    dispatches: orm.Mapped[int] = orm.mapped_column(default=1)


# TaskFlow's persistence tables (lifecycle/flows), in the same database and
# metadata so that the migration check covers them; TaskFlow owns their
# definition (migration 0002).
TASKFLOW_TABLES = taskflow_tables.fetch(Base.metadata)
