"""RAM and vCPU filters with allocation ratios, for the project's conductor.

Nova removed its ``RamFilter`` and ``CoreFilter`` (Stein) in favour of
Placement, which checks these resources before the filters run. The project's
own conductor has no Placement, so these two do the same arithmetic the old
Nova filters did, on HostState attributes with Nova's names:

* ``free_ram_mb``, ``total_usable_ram_mb``, ``ram_allocation_ratio``;
* ``vcpus_total``, ``vcpus_used``, ``cpu_allocation_ratio``;

against ``spec_obj.flavor.memory_mb`` and ``spec_obj.flavor.vcpus``. A ratio
that is unset (``None``) counts as 1.0. They also record the oversubscribed
limits in ``host_state.limits`` (``memory_mb``, ``vcpu``) as Nova did, for
the claim. They are not meant to be enabled in nova-scheduler.
"""

from filters import BaseHostFilter, get_logger

LOG = get_logger(__name__)


def _ratio(value):
    return 1.0 if value is None else float(value)


def _set_limit(host_state, name, value):
    limits = getattr(host_state, 'limits', None)
    if isinstance(limits, dict):
        limits[name] = value


class RamFilter(BaseHostFilter):
    """Pass hosts whose RAM, oversubscribed by ``ram_allocation_ratio``, still
    holds the flavor's ``memory_mb``."""

    # Each placed instance consumes RAM: run it for every instance.
    run_filter_once_per_request = False

    def host_passes(self, host_state, spec_obj):
        requested = spec_obj.flavor.memory_mb
        total = host_state.total_usable_ram_mb
        limit = total * _ratio(host_state.ram_allocation_ratio)
        used = total - host_state.free_ram_mb
        usable = limit - used
        if usable < requested:
            LOG.debug('%(host)s does not have %(requested)d MB usable RAM '
                      '(usable %(usable).0f MB: limit %(limit).0f, used '
                      '%(used)d)',
                      {'host': host_state.host, 'requested': requested,
                       'usable': usable, 'limit': limit, 'used': used})
            return False
        _set_limit(host_state, 'memory_mb', limit)
        return True


class VcpuFilter(BaseHostFilter):
    """Pass hosts whose vCPUs, oversubscribed by ``cpu_allocation_ratio``,
    still hold the flavor's ``vcpus`` (never more than the physical count)."""

    run_filter_once_per_request = False

    def host_passes(self, host_state, spec_obj):
        requested = spec_obj.flavor.vcpus
        if not host_state.vcpus_total:
            # Nova's CoreFilter: no inventory reported yet -> do not block.
            return True
        ratio = _ratio(host_state.cpu_allocation_ratio)
        limit = host_state.vcpus_total * ratio
        if requested > host_state.vcpus_total:
            LOG.debug('%(host)s has %(total)d physical vCPUs, fewer than the '
                      '%(requested)d requested',
                      {'host': host_state.host, 'requested': requested,
                       'total': host_state.vcpus_total})
            return False
        free = limit - host_state.vcpus_used
        if free < requested:
            LOG.debug('%(host)s does not have %(requested)d free vCPUs '
                      '(free %(free)s: limit %(limit)s, used %(used)s)',
                      {'host': host_state.host, 'requested': requested,
                       'free': free, 'limit': limit,
                       'used': host_state.vcpus_used})
            return False
        _set_limit(host_state, 'vcpu', limit)
        return True
