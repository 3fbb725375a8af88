"""HostAggregateGroupFilter: keep an instance inside its storage group.

A *storage group* is a host aggregate whose metadata has
``storage_group=<name>``: its hosts see the same instance storage. An instance
whose root disk was retained on that storage (partial offload) can only be
unshelved on one of those hosts.

The wanted group comes from the scheduler hint ``storage_group`` (the
service's conductor sets it from the instance's ``shelved_storage_group``
system metadata; by hand: ``openstack server create --hint
storage_group=group-a``). Without the hint, inside nova-scheduler, the
filter reads the instance's retained disk itself (:mod:`filters.retained`:
once per request, only for unshelve-like requests, no read for boots).
Hosts pass when one of their aggregates carries that group. A request
without either passes every host, so the filter is safe to enable globally.

Enable it in nova-scheduler with::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = filters.host_aggregate_group.HostAggregateGroupFilter
    enabled_filters = ...,HostAggregateGroupFilter
"""

from filters import BaseHostFilter, get_logger, names, request_is_rebuild
from filters import retained

LOG = get_logger(__name__)

#: Scheduler hint naming the storage group that holds the retained disk.
HINT = names.HINT_STORAGE_GROUP
#: Aggregate metadata key marking a storage group.
METADATA_KEY = names.AGGREGATE_STORAGE_GROUP


def wanted_groups(spec_obj):
    """The storage group(s) asked for by ``spec_obj``; empty = no constraint.

    Nova keeps every hint as a list; ``get_scheduler_hint`` unwraps a
    one-element list. Plain dicts with a list or a str are accepted too.
    """
    getter = getattr(spec_obj, 'get_scheduler_hint', None)
    if callable(getter):
        value = getter(HINT)
    else:
        hints = getattr(spec_obj, 'scheduler_hints', None) or {}
        value = hints.get(HINT)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [value]
    return frozenset(str(v) for v in value if v)


def request_groups(spec_obj):
    """The groups the request must stay in: the hint, else the group of the
    instance's retained disk (Nova only); empty = no constraint."""
    wanted = wanted_groups(spec_obj)
    if wanted:
        return wanted
    disk = retained.retained_disk(spec_obj)
    if disk:
        return frozenset([disk['storage_group']])
    return frozenset()


def host_groups(host_state):
    """Storage groups of every aggregate ``host_state`` belongs to."""
    groups = set()
    for aggregate in getattr(host_state, 'aggregates', None) or ():
        group = (getattr(aggregate, 'metadata', None) or {}).get(METADATA_KEY)
        if group:
            groups.add(group)
    return groups


class HostAggregateGroupFilter(BaseHostFilter):
    """Pass only hosts in the storage group named by the ``storage_group``
    scheduler hint or holding the instance's retained disk; every host when
    there is neither."""

    # The decision depends only on the request's hint and on the hosts'
    # aggregate membership, neither of which changes while the instances of
    # one (multi-instance) request are placed: hosts rejected for the first
    # instance would be rejected again, so filtering once is enough.
    run_filter_once_per_request = True

    # Nova's rebuild check asks whether the instance's current host is still
    # acceptable; a rebuild never moves the disk, so storage groups are not
    # a question there (Nova's default, kept on purpose).
    RUN_ON_REBUILD = False

    def filter_all(self, filter_obj_list, spec_obj):
        """Same result as the base class's per-host loop, with the hint
        read once per request instead of once per host."""
        if not self.RUN_ON_REBUILD and request_is_rebuild(spec_obj):
            return list(filter_obj_list)
        wanted = request_groups(spec_obj)
        if not wanted:
            return list(filter_obj_list)
        return [host_state for host_state in filter_obj_list
                if self._in_groups(host_state, wanted)]

    def host_passes(self, host_state, spec_obj):
        wanted = request_groups(spec_obj)
        if not wanted:
            return True
        return self._in_groups(host_state, wanted)

    @staticmethod
    def _in_groups(host_state, wanted):
        groups = host_groups(host_state)
        if groups & wanted:
            return True
        LOG.debug('%(host)s is not in storage group %(wanted)s '
                  '(its storage groups: %(groups)s)',
                  {'host': getattr(host_state, 'host', host_state),
                   'wanted': ', '.join(sorted(wanted)),
                   'groups': ', '.join(sorted(groups)) or 'none'})
        return False
