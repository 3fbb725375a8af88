"""Flavors, compute hosts and the capacity claims on them."""

import sqlalchemy as sa
from oslo_db import exception as db_exc

from lifecycle import exception
from lifecycle.db import models


class HostsMixin:
    """Part of :class:`lifecycle.db.api.Database`."""

    # -- flavors ----------------------------------------------------------

    def flavor_create(self, values: dict) -> models.Flavor:
        flavor = models.Flavor(**values)
        try:
            with self.session() as session:
                session.add(flavor)
        except db_exc.DBDuplicateEntry as e:
            key = 'name' if 'name' in (e.columns or ['name']) else 'id'
            raise exception.FlavorExists(
                key=key,
                value=values['name' if key == 'name' else 'flavorid']) from e
        return flavor

    def flavor_get(self, flavorid: str) -> models.Flavor:
        with self.session() as session:
            flavor = session.scalars(sa.select(models.Flavor).where(
                models.Flavor.flavorid == flavorid)).first()
        if flavor is None:
            raise exception.FlavorNotFound(flavor_id=flavorid)
        return flavor

    def flavor_get_all(self) -> list[models.Flavor]:
        with self.session() as session:
            return list(session.scalars(sa.select(models.Flavor).order_by(
                models.Flavor.memory_mb, models.Flavor.flavorid)))

    # -- compute nodes ----------------------------------------------------

    def compute_node_report(self, host: str,
                            values: dict) -> models.ComputeNode:
        """Create or refresh a host's capacity and heartbeat.

        Usage counters are never written here: only claims change them.
        """
        values = dict(values, last_seen_at=models.utcnow())
        with self.session() as session:
            node = session.scalars(sa.select(models.ComputeNode).where(
                models.ComputeNode.host == host)).first()
            if node is None:
                node = models.ComputeNode(host=host, **values)
                session.add(node)
            else:
                for key, value in values.items():
                    setattr(node, key, value)
        return node

    def compute_node_get(self, host: str) -> models.ComputeNode:
        with self.session() as session:
            node = session.scalars(sa.select(models.ComputeNode).where(
                models.ComputeNode.host == host)).first()
        if node is None:
            raise exception.ComputeHostNotFound(host=host)
        return node

    def compute_node_get_all(self) -> list[models.ComputeNode]:
        with self.session() as session:
            return list(session.scalars(sa.select(models.ComputeNode)
                                        .order_by(models.ComputeNode.id)))

    def claim(self, instance_uuid: str, host: str) -> None:
        """Claim the instance's vCPU and RAM on ``host``, atomically.

        Succeeds at most once per instance until :meth:`release_claim`; a
        repeated claim on the same host is a no-op (resumed operations).
        Raises ClaimFailed when the host has not enough free capacity.
        """
        node = models.ComputeNode
        inst = models.Instance
        with self.session() as session:
            instance = session.execute(
                sa.select(inst.vcpus, inst.memory_mb, inst.claimed_host)
                .where(inst.uuid == instance_uuid,
                       inst.deleted_at.is_(None))).first()
            if instance is None:
                raise exception.InstanceNotFound(instance_id=instance_uuid)
            if instance.claimed_host == host:
                return
            if instance.claimed_host is not None:
                raise exception.Conflict(
                    reason='instance %s already holds a claim on host %s' %
                    (instance_uuid, instance.claimed_host))
            taken = session.execute(
                sa.update(node)
                .where(node.host == host,
                       node.vcpus_used + instance.vcpus <=
                       node.vcpus * node.cpu_allocation_ratio,
                       node.memory_mb_used + instance.memory_mb <=
                       (node.memory_mb - node.reserved_memory_mb) *
                       node.ram_allocation_ratio)
                .values(vcpus_used=node.vcpus_used + instance.vcpus,
                        memory_mb_used=node.memory_mb_used +
                        instance.memory_mb,
                        running_vms=node.running_vms + 1)).rowcount
            if taken != 1:
                raise exception.ClaimFailed(vcpus=instance.vcpus,
                                            memory_mb=instance.memory_mb,
                                            host=host)
            marked = session.execute(
                sa.update(inst)
                .where(inst.uuid == instance_uuid,
                       inst.claimed_host.is_(None))
                .values(claimed_host=host, host=host)).rowcount
            if marked != 1:
                # Another claim won the race for this instance; the
                # exception rolls back our host update.
                raise exception.Conflict(
                    reason='instance %s was claimed concurrently' %
                    instance_uuid)

    def release_claim(self, instance_uuid: str, *,
                      only_host: str | None = None,
                      only_task_state: str | None = None,
                      values: dict | None = None) -> str | None:
        """Give back the instance's claim, exactly once. Returns the host
        it was on, or None when the instance held no claim.

        ``only_host``/``only_task_state`` make the release conditional on
        the instance still holding that claim in that task (checked in the
        same UPDATE); ``values`` are written to the instance with it.
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
        return row.claimed_host

