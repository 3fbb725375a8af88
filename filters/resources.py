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

from filters import BaseHostFilter, get_logger, request_is_rebuild

LOG = get_logger(__name__)


class _RequestOnceMixin:
    """``filter_all`` with the same result as the base class's per-host
    loop, reading the request (rebuild check, flavor) once instead of once
    per host. ``_passing(hosts, requested)`` is the one implementation;
    ``host_passes`` is it for a single host."""

    def filter_all(self, filter_obj_list, spec_obj):
        if not self.RUN_ON_REBUILD and request_is_rebuild(spec_obj):
            return list(filter_obj_list)
        return self._passing(filter_obj_list, self._requested(spec_obj))

    def host_passes(self, host_state, spec_obj):
        return bool(self._passing([host_state], self._requested(spec_obj)))


class RamFilter(_RequestOnceMixin, BaseHostFilter):
    """Pass hosts whose RAM, oversubscribed by ``ram_allocation_ratio``, still
    holds the flavor's ``memory_mb``."""

    # Each placed instance consumes RAM: run it for every instance.
    run_filter_once_per_request = False

    @staticmethod
    def _requested(spec_obj):
        return spec_obj.flavor.memory_mb

    @staticmethod
    def _passing(host_states, requested):
        passed = []
        for host_state in host_states:
            total = host_state.total_usable_ram_mb
            ratio = host_state.ram_allocation_ratio
            limit = total * (1.0 if ratio is None else float(ratio))
            used = total - host_state.free_ram_mb
            usable = limit - used
            if usable < requested:
                LOG.debug('%(host)s does not have %(requested)d MB usable '
                          'RAM (usable %(usable).0f MB: limit %(limit).0f, '
                          'used %(used)d)',
                          {'host': host_state.host, 'requested': requested,
                           'usable': usable, 'limit': limit, 'used': used})
                continue
            limits = getattr(host_state, 'limits', None)
            if isinstance(limits, dict):
                limits['memory_mb'] = limit
            passed.append(host_state)
        return passed


class VcpuFilter(_RequestOnceMixin, BaseHostFilter):
    """Pass hosts whose vCPUs, oversubscribed by ``cpu_allocation_ratio``,
    still hold the flavor's ``vcpus`` (never more than the physical count)."""

    run_filter_once_per_request = False

    @staticmethod
    def _requested(spec_obj):
        return spec_obj.flavor.vcpus

    @staticmethod
    def _passing(host_states, requested):
        passed = []
        for host_state in host_states:
            total = host_state.vcpus_total
            if not total:
                # Nova's CoreFilter: no inventory reported yet -> do not
                # block.
                passed.append(host_state)
                continue
            ratio = host_state.cpu_allocation_ratio
            limit = total * (1.0 if ratio is None else float(ratio))
            if requested > total:
                LOG.debug('%(host)s has %(total)d physical vCPUs, fewer '
                          'than the %(requested)d requested',
                          {'host': host_state.host, 'requested': requested,
                           'total': total})
                continue
            free = limit - host_state.vcpus_used
            if free < requested:
                LOG.debug('%(host)s does not have %(requested)d free vCPUs '
                          '(free %(free)s: limit %(limit)s, used %(used)s)',
                          {'host': host_state.host, 'requested': requested,
                           'free': free, 'limit': limit,
                           'used': host_state.vcpus_used})
                continue
            limits = getattr(host_state, 'limits', None)
            if isinstance(limits, dict):
                limits['vcpu'] = limit
            passed.append(host_state)
        return passed
