"""Host selection for the conductor: the same filters and weighers that
nova-scheduler can load from ``filters/``, over host states built from the
database.

Selection is advisory: the conductor still claims each candidate atomically
(``Database.claim``), so two requests that pick the same host cannot both
take its last capacity.
"""

import datetime

from oslo_log import log as logging
from oslo_utils import timeutils

from filters import host_aggregate_group
from filters import host_state
from filters import resources
from filters import weighers
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import models

LOG = logging.getLogger(__name__)


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

    def up_host_states(self) -> list[host_state.HostState]:
        """Host states of enabled compute hosts that reported recently."""
        cutoff = timeutils.utcnow() - datetime.timedelta(
            seconds=CONF.compute.service_down_time)
        by_host: dict[str, list[host_state.Aggregate]] = {}
        for agg in self.db.aggregate_get_all():
            aggregate = host_state.Aggregate(
                id=agg.id, name=agg.name, hosts=agg.host_names,
                metadata=agg.metadata_dict)
            for host in agg.host_names:
                by_host.setdefault(host, []).append(aggregate)
        return [self._host_state(node, by_host.get(node.host, []))
                for node in self.db.compute_node_get_all()
                if not node.disabled and node.last_seen_at and
                node.last_seen_at >= cutoff]

    @staticmethod
    def _host_state(node: models.ComputeNode,
                    aggregates: list) -> host_state.HostState:
        usable_ram = node.memory_mb - node.reserved_memory_mb
        return host_state.HostState(
            host=node.host, aggregates=aggregates, vcpus_total=node.vcpus,
            vcpus_used=node.vcpus_used,
            free_ram_mb=usable_ram - node.memory_mb_used,
            total_usable_ram_mb=usable_ram,
            cpu_allocation_ratio=node.cpu_allocation_ratio,
            ram_allocation_ratio=node.ram_allocation_ratio)

    @staticmethod
    def request_spec(instance: models.Instance,
                     request: dict) -> host_state.RequestSpec:
        sysmeta = instance.system_metadata
        hints = {}
        if sysmeta.get('shelved_storage_group'):
            hints['storage_group'] = [sysmeta['shelved_storage_group']]
        if sysmeta.get('shelved_host'):
            hints['shelved_host'] = [sysmeta['shelved_host']]
        return host_state.RequestSpec(
            instance_uuid=instance.uuid,
            flavor=host_state.Flavor(vcpus=instance.vcpus,
                                     memory_mb=instance.memory_mb,
                                     root_gb=instance.root_gb),
            scheduler_hints=hints,
            availability_zone=request.get('availability_zone'))

    def _candidates(self, instance: models.Instance,
                    request: dict) -> list[host_state.HostState]:
        states = self.up_host_states()
        sysmeta = instance.system_metadata
        pinned = request.get('requested_host')
        if (not pinned and sysmeta.get('shelved_disk') and
                not sysmeta.get('shelved_storage_group')):
            # A disk outside any storage group is seen by its host only.
            pinned = sysmeta.get('shelved_host')
        if pinned:
            states = [s for s in states if s.host == pinned]
        zone = request.get('availability_zone')
        if zone:
            states = [s for s in states if any(
                a.metadata.get('availability_zone') == zone
                for a in s.aggregates)]
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
        group = instance.system_metadata.get('shelved_storage_group')
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
        group = sysmeta.get('shelved_storage_group')
        up = {s.host for s in self.up_host_states()}
        hosts = (self.db.hosts_in_storage_group(group) if group
                 else [sysmeta.get('shelved_host')])
        hosts = [h for h in hosts if h in up]
        original = sysmeta.get('shelved_host')
        return sorted(hosts, key=lambda h: h != original)
