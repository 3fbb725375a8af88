"""Host selection for the conductor: the same filters and weighers that
nova-scheduler can load from ``filters/``, over host states built from the
database.

Selection is advisory: the conductor still claims each candidate atomically
(``Database.claim``, a conditional UPDATE), so two requests that pick the
same host -- in one conductor or in several -- cannot both take its last
capacity.

Where the host states come from, per request:

* a request that can only use a few hosts -- an unshelve whose retained
  disk is in a storage group, or one pinned to a host -- reads just those
  hosts from the database (their capacity and their aggregates, a few
  indexed queries). This is the storage-group pre-filter (as Nova turns
  aggregate constraints into Placement ``member_of`` before its filters
  run); HostAggregateGroupFilter still runs on the result;
* any other request (a boot, an unshelve of a fully offloaded instance)
  uses :class:`HostStateCache`: every host's HostState kept in memory, as
  Nova's HostManager does, and brought up to date before each request from
  the rows written since the last one (a fingerprint query tells whether
  anything changed at all).

Both give the same hosts, in the same order (compute node id), as reading
every node afresh would.
"""

import datetime
import threading
import time

from oslo_log import log as logging
from oslo_utils import timeutils

from filters import host_aggregate_group
from filters import host_state
from filters import resources
from filters import weighers
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import models
from lifecycle import names

LOG = logging.getLogger(__name__)


def _aggregates_by_host(memberships) -> dict[str, list[host_state.Aggregate]]:
    by_host: dict[str, list[host_state.Aggregate]] = {}
    for agg_id, name, hosts, metadata in memberships:
        aggregate = host_state.Aggregate(id=agg_id, name=name, hosts=hosts,
                                         metadata=metadata)
        for host in hosts:
            by_host.setdefault(host, []).append(aggregate)
    return by_host


def _host_state(row, aggregates: list) -> host_state.HostState:
    usable_ram = row.memory_mb - row.reserved_memory_mb
    return host_state.HostState(
        host=row.host, aggregates=aggregates, vcpus_total=row.vcpus,
        vcpus_used=row.vcpus_used,
        free_ram_mb=usable_ram - row.memory_mb_used,
        total_usable_ram_mb=usable_ram,
        cpu_allocation_ratio=row.cpu_allocation_ratio,
        ram_allocation_ratio=row.ram_allocation_ratio)


def _up_cutoff() -> datetime.datetime:
    return timeutils.utcnow() - datetime.timedelta(
        seconds=CONF.compute.service_down_time)


def _weighted(row, columns) -> list[int]:
    """``id * column`` of one compute node row, as compute_node_fingerprint
    sums them."""
    return [row.id * int(getattr(row, name) or 0) for name in columns]


class HostStateCache:
    """Every compute node's HostState, kept current between requests, as
    Nova's HostManager keeps them.

    Before each use, one transaction reads two fingerprints (single-row
    aggregate queries, ``Database.aggregate_fingerprint`` and
    ``compute_node_fingerprint``) that tell whether aggregates or compute
    nodes changed since the last use; the second also gives the ids of the
    nodes that are down (disabled, or no heartbeat within ``[compute]
    service_down_time``), which decides which entries are returned.
    Aggregates, which change rarely, are then re-read whole. Of the compute
    nodes, only the rows written at or after the last write already seen
    (minus ``MARGIN``, for writes that commit a little out of timestamp
    order, and MySQL's whole seconds) are re-read -- a heartbeat alone is
    not such a write; the cache then checks its own id-weighted sums of the
    usage and capacity columns against the fingerprint's, and reads every
    node when they differ (a write the re-read missed) -- as it does when a
    node was added or removed, and every ``FULL_REFRESH`` seconds. Host
    states are replaced, never changed in place, so a request still
    filtering the previous list is not disturbed. The claim stays the
    database's conditional UPDATE: a host state that is stale in spite of
    all this costs a claim retry, never an overcommitted host.
    """

    MARGIN = datetime.timedelta(seconds=2)
    FULL_REFRESH = 60.0

    def __init__(self, db: db_api.Database) -> None:
        self.db = db
        self._columns = db.FINGERPRINT_COLUMNS
        self._lock = threading.Lock()
        self._aggregate_fp: tuple | None = None
        self._node_fp: tuple | None = None
        self._loaded_at = float('-inf')
        self._by_host: dict[str, list[host_state.Aggregate]] = {}
        # (HostState, row) per compute node, in node id order.
        self._entries: list[tuple] = []
        self._index: dict[str, int] = {}
        self._sums: list[int] = []
        # The up host states of _up_of (entries) without the _down ids.
        self._up: list[host_state.HostState] = []
        self._up_of: list[tuple] | None = None
        self._down: frozenset[int] = frozenset()
        self.full_loads = 0
        self.rows_reread = 0

    def up_host_states(self) -> list[host_state.HostState]:
        """Host states of enabled hosts seen within service_down_time."""
        with self._lock:
            with self.db.session(readonly=True) as session:
                down = self._refresh(session)
            if self._up_of is not self._entries or down != self._down:
                self._up = [state for state, row in self._entries
                            if row.id not in down]
                self._up_of, self._down = self._entries, down
            return list(self._up)

    def _refresh(self, session) -> frozenset[int]:
        """Bring the cache up to date, reading in ``session`` (one
        transaction: a consistent picture, one BEGIN/COMMIT); the ids of
        the nodes that are down."""
        full = time.monotonic() - self._loaded_at > self.FULL_REFRESH
        aggregate_fp = self.db.aggregate_fingerprint(session=session)
        node_fp, down = self.db.compute_node_fingerprint(_up_cutoff(),
                                                         session=session)
        if full or aggregate_fp != self._aggregate_fp:
            self._by_host = _aggregates_by_host(
                self.db.aggregate_memberships(session=session))
            self._aggregate_fp = aggregate_fp
            self._load_all(node_fp, session)
        elif node_fp[:2] != self._node_fp[:2]:  # nodes added or removed
            self._load_all(node_fp, session)
        elif node_fp != self._node_fp:
            self._load_changed(node_fp, session)
        return down

    def _load_changed(self, node_fp: tuple, session) -> None:
        since = self._node_fp[2]
        rows = self.db.compute_node_states(
            changed_since=since - self.MARGIN if since else None,
            session=session)
        self.rows_reread += len(rows)
        entries = list(self._entries)
        sums = list(self._sums)
        for row in rows:
            index = self._index.get(row.host)
            if index is None:  # replaced meanwhile
                self._load_all(node_fp, session)
                return
            old = entries[index][1]
            if row == old:
                # Re-read only because it falls within MARGIN: in a burst
                # most rows of the window are ones the cache already
                # holds, and rebuilding their host states cost more than
                # the query.
                continue
            sums = [total + new - before for total, new, before in zip(
                sums, _weighted(row, self._columns),
                _weighted(old, self._columns), strict=True)]
            entries[index] = (
                _host_state(row, self._by_host.get(row.host, [])), row)
        if tuple(sums) != node_fp[3:3 + len(sums)]:
            LOG.debug('Host state cache: a write older than %s was missed; '
                      'reading every compute node', since - self.MARGIN)
            self._load_all(node_fp, session)
            return
        LOG.debug('Host state cache: %d changed compute nodes re-read',
                  len(rows))
        self._entries = entries
        self._sums = sums
        self._node_fp = node_fp

    def _load_all(self, node_fp: tuple, session) -> None:
        rows = self.db.compute_node_states(session=session)
        self._entries = [
            (_host_state(row, self._by_host.get(row.host, [])), row)
            for row in rows]
        self._index = {row.host: i for i, row in enumerate(rows)}
        self._sums = [0] * len(self._columns)
        for row in rows:
            self._sums = [total + value for total, value in zip(
                self._sums, _weighted(row, self._columns), strict=True)]
        self._node_fp = node_fp
        self._loaded_at = time.monotonic()
        self.full_loads += 1
        LOG.debug('Host state cache: loaded %d compute nodes', len(rows))


class Scheduler:
    def __init__(self, db: db_api.Database) -> None:
        self.db = db
        self.filters = [host_aggregate_group.HostAggregateGroupFilter(),
                        resources.VcpuFilter(), resources.RamFilter()]
        self.weighers = [
            weighers.ShelvedHostWeigher(
                CONF.filter_scheduler.shelved_host_weight_multiplier),
            weighers.FreeRamWeigher(
                CONF.filter_scheduler.ram_weight_multiplier)]
        self.host_states = HostStateCache(db)

    def up_host_states(self) -> list[host_state.HostState]:
        """Host states of enabled compute hosts that reported recently."""
        return self.host_states.up_host_states()

    def up_host_states_of(self, *, hosts: list[str] | None = None,
                          storage_group: str | None = None
                          ) -> list[host_state.HostState]:
        """As :meth:`up_host_states`, for the given hosts or the hosts of
        a storage group only, read afresh from the database."""
        with self.db.session(readonly=True) as session:
            rows = self.db.compute_node_states(
                hosts=hosts, storage_group=storage_group,
                up_since=_up_cutoff(), session=session)
            by_host = _aggregates_by_host(self.db.aggregate_memberships(
                [r.host for r in rows], session=session))
        return [_host_state(row, by_host.get(row.host, [])) for row in rows]

    @staticmethod
    def request_spec(instance: models.Instance,
                     request: dict) -> host_state.RequestSpec:
        sysmeta = instance.system_metadata
        # The user's hints (server create), as Nova keeps them: lists.
        hints = {key: value if isinstance(value, list) else [value]
                 for key, value in
                 (request.get('scheduler_hints') or {}).items()}
        if sysmeta.get(names.SHELVED_STORAGE_GROUP):
            hints[names.HINT_STORAGE_GROUP] = [
                sysmeta[names.SHELVED_STORAGE_GROUP]]
        if sysmeta.get(names.SHELVED_HOST):
            hints[names.HINT_SHELVED_HOST] = [sysmeta[names.SHELVED_HOST]]
        return host_state.RequestSpec(
            instance_uuid=instance.uuid,
            flavor=host_state.Flavor(vcpus=instance.vcpus,
                                     memory_mb=instance.memory_mb,
                                     root_gb=instance.root_gb),
            scheduler_hints=hints,
            availability_zone=request.get('availability_zone'))

    def _candidates(self, instance: models.Instance,
                    request: dict) -> list[host_state.HostState]:
        sysmeta = instance.system_metadata
        pinned = request.get('requested_host')
        if (not pinned and sysmeta.get(names.SHELVED_DISK) and
                not sysmeta.get(names.SHELVED_STORAGE_GROUP)):
            # A disk outside any storage group is seen by its host only.
            pinned = sysmeta.get(names.SHELVED_HOST)
        group = sysmeta.get(names.SHELVED_STORAGE_GROUP)
        if pinned:
            states = self.up_host_states_of(hosts=[pinned])
        elif group:
            # The storage_group hint lets HostAggregateGroupFilter pass
            # only this group's hosts: read just those.
            states = self.up_host_states_of(storage_group=group)
        else:
            states = self.up_host_states()
        zone = request.get('availability_zone')
        if zone:
            states = [s for s in states if any(
                a.metadata.get('availability_zone') == zone
                for a in s.aggregates)]
        # same_host/different_host hints, resolved by the API to the hosts
        # of the servers they name (Nova's SameHost/DifferentHostFilter).
        hints = request.get('scheduler_hints') or {}
        if 'same_host' in hints:
            states = [s for s in states if s.host in hints['same_host']]
        if 'different_host' in hints:
            states = [s for s in states
                      if s.host not in hints['different_host']]
        return states

    def select_destinations(self, instance: models.Instance,
                            request: dict) -> list[str]:
        """Hosts to try, best first."""
        spec = self.request_spec(instance, request)
        chosen = host_state.filter_and_weigh(
            self._candidates(instance, request), spec, self.filters,
            self.weighers)
        LOG.debug('Instance %s: candidate hosts %s', instance.uuid,
                  [s.host for s in chosen])
        return [s.host for s in chosen]

    def explain(self, instance: models.Instance, request: dict) -> str:
        """Why no host fits, for the instance fault."""
        group = instance.system_metadata.get(names.SHELVED_STORAGE_GROUP)
        parts = ['%d vCPU and %d MiB RAM needed' % (instance.vcpus,
                                                   instance.memory_mb)]
        if group:
            parts.append('in storage group %s' % group)
        if request.get('requested_host'):
            parts.append('on host %s' % request['requested_host'])
        if request.get('availability_zone'):
            parts.append('in availability zone %s' %
                         request['availability_zone'])
        return 'No up host has %s.' % ' '.join(parts)

    def hosts_reaching_disk(self, instance: models.Instance) -> list[str]:
        """Up hosts that see the instance's retained disk, original first."""
        sysmeta = instance.system_metadata
        group = sysmeta.get(names.SHELVED_STORAGE_GROUP)
        hosts = (self.db.hosts_in_storage_group(group) if group
                 else [sysmeta.get(names.SHELVED_HOST)])
        up = {s.host for s in self.up_host_states_of(
            hosts=[h for h in hosts if h])}
        hosts = [h for h in hosts if h in up]
        original = sysmeta.get(names.SHELVED_HOST)
        return sorted(hosts, key=lambda h: h != original)
