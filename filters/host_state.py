"""Plain stand-ins for Nova's scheduler objects, and a filter/weigh helper.

The project's conductor uses these when Nova is not installed. Attribute
names are Nova's (``nova.scheduler.host_manager.HostState``,
``nova.objects.Aggregate``, ``nova.objects.RequestSpec``,
``nova.objects.Flavor``), so the same filters and weighers run on either.
"""

import dataclasses
from typing import Any


@dataclasses.dataclass
class Flavor:
    vcpus: int
    memory_mb: int
    root_gb: int = 0


@dataclasses.dataclass
class Aggregate:
    id: int
    name: str
    hosts: list[str] = dataclasses.field(default_factory=list)
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def availability_zone(self):
        return self.metadata.get('availability_zone')


@dataclasses.dataclass
class HostState:
    host: str
    aggregates: list[Aggregate] = dataclasses.field(default_factory=list)
    vcpus_total: int = 0
    vcpus_used: int = 0
    free_ram_mb: int = 0
    total_usable_ram_mb: int = 0
    cpu_allocation_ratio: float | None = 1.0
    ram_allocation_ratio: float | None = 1.0
    nodename: str | None = None
    free_disk_mb: int = 0
    total_usable_disk_gb: int = 0
    disk_allocation_ratio: float | None = 1.0
    num_instances: int = 0
    uuid: str | None = None
    updated: Any = None
    # Oversubscribed limits the resource filters record for the claim.
    limits: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.nodename is None:
            self.nodename = self.host


@dataclasses.dataclass
class RequestSpec:
    instance_uuid: str
    flavor: Flavor
    scheduler_hints: dict[str, list[str]] = dataclasses.field(
        default_factory=dict)
    availability_zone: str | None = None
    num_instances: int = 1

    def get_scheduler_hint(self, hint_name, default=None):
        """As Nova's: the single value when the hint is a one-element list,
        the value as stored otherwise, ``default`` when absent."""
        if self.scheduler_hints is None:
            return default
        value = self.scheduler_hints.get(hint_name, default)
        if isinstance(value, list) and len(value) == 1:
            return value[0]
        return value

    # Nova's RequestSpec proxies these to its flavor.
    @property
    def memory_mb(self):
        return self.flavor.memory_mb

    @property
    def vcpus(self):
        return self.flavor.vcpus

    def __contains__(self, name):
        # Nova code tests ``'field' in spec_obj`` (versioned objects).
        return getattr(self, name, None) is not None


def normalize(weights, minval=None, maxval=None):
    """Nova's ``nova.weights.normalize``: scale to 0..1 (all equal -> 0)."""
    if not weights:
        return []
    maxval = float(max(weights) if maxval is None else maxval)
    minval = float(min(weights) if minval is None else minval)
    if minval == maxval:
        return [0.0] * len(weights)
    return [(w - minval) / (maxval - minval) for w in weights]


class WeighedHost:
    """Same shape as Nova's ``WeighedHost``: ``obj`` and ``weight``."""

    __slots__ = ('obj', 'weight')

    def __init__(self, obj, weight=0.0):
        self.obj = obj
        self.weight = weight

    def __repr__(self):
        return 'WeighedHost [host: %r, weight: %s]' % (self.obj, self.weight)


def filter_and_weigh(host_states, spec_obj, filters, weighers, index=0):
    """Hosts that pass every filter, best first.

    ``filters`` and ``weighers`` are instances (local or Nova bases). Each
    weigher's raw weights are normalised to 0..1 (honouring its
    ``minval``/``maxval``), multiplied by ``weight_multiplier(host)`` and
    summed, as Nova's ``BaseWeightHandler.get_weighed_objects`` does; ties
    keep the input order.
    """
    hosts = list(host_states)
    for filter_ in filters:
        if not filter_.run_filter_for_index(index):
            continue
        passed = filter_.filter_all(hosts, spec_obj)
        hosts = [] if passed is None else list(passed)
        if not hosts:
            return []
    if len(hosts) <= 1:
        return hosts
    weighed = [WeighedHost(h) for h in hosts]
    totals = [0.0] * len(weighed)
    for weigher in weighers:
        raw = weigher.weigh_objects(weighed, spec_obj)
        norm = normalize(raw, weigher.minval, weigher.maxval)
        if not any(norm):
            continue  # adds 0 to every host, whatever the multiplier
        if getattr(weigher, 'constant_multiplier', False):
            # The weigher says weight_multiplier() is the same for every
            # host: call it once.
            factor = weigher.weight_multiplier(weighed[0].obj)
            totals = [total + factor * weight
                      for total, weight in zip(totals, norm, strict=True)]
        else:
            multiplier = weigher.weight_multiplier
            totals = [total + multiplier(item.obj) * weight
                      for total, item, weight in zip(totals, weighed, norm,
                                                     strict=True)]
    # Highest weight first; ties keep the input order (stable sort).
    order = sorted(range(len(hosts)), key=totals.__getitem__, reverse=True)
    return [hosts[i] for i in order]
