"""Scheduler filters and weighers for storage groups.

This package is loaded in two places:

* by **nova-scheduler**, e.g.::

      [filter_scheduler]
      available_filters = nova.scheduler.filters.all_filters
      available_filters = filters.host_aggregate_group.HostAggregateGroupFilter
      enabled_filters = ...,HostAggregateGroupFilter

  There ``BaseHostFilter`` and ``BaseWeigher`` below *are* Nova's
  ``nova.scheduler.filters.BaseHostFilter`` and
  ``nova.scheduler.weights.BaseHostWeigher``, so Nova's loader accepts the
  classes;
* by the project's own conductor, where Nova is not installed: then they are
  small local bases with the same shape (``filter_all`` / ``_filter_one`` /
  ``host_passes``, ``run_filter_once_per_request``, ``RUN_ON_REBUILD``;
  ``_weigh_object``, ``weigh_objects``, ``weight_multiplier``, ``minval`` /
  ``maxval``).

Nothing here imports the service (``lifecycle``), libvirt, oslo.config or a
database library: a nova-scheduler environment only has Nova and its
dependencies. Nova is imported only when it is installed.
"""

import abc
import importlib.util

__all__ = ['BaseHostFilter', 'BaseWeigher', 'NOVA_AVAILABLE', 'get_logger',
           'request_is_rebuild']


def get_logger(name):
    """``oslo_log`` logger when available (Nova has it), else ``logging``."""
    try:
        from oslo_log import log
    except ImportError:
        import logging as log
    return log.getLogger(name)


def request_is_rebuild(spec_obj):
    """True when the request is Nova's "can this host still take the rebuild"
    check (same test as ``nova.scheduler.utils.request_is_rebuild``)."""
    if not spec_obj:
        return False
    try:
        # Nova's RequestSpec raises on reading an unset field: ask first.
        if 'scheduler_hints' not in spec_obj:
            return False
    except TypeError:  # a plain object, not a container
        pass
    hints = getattr(spec_obj, 'scheduler_hints', None) or {}
    return hints.get('_nova_check_type') == ['rebuild']


class _LocalBaseHostFilter:
    """Same shape as ``nova.scheduler.filters.BaseHostFilter``."""

    # Filters that only depend on the request (not on which instance of a
    # multi-instance request is being placed) set this to True.
    run_filter_once_per_request = False

    # Run this filter for Nova's rebuild check (see Nova's BaseHostFilter).
    RUN_ON_REBUILD = False

    def _filter_one(self, obj, spec_obj):
        if not self.RUN_ON_REBUILD and request_is_rebuild(spec_obj):
            return True
        return self.host_passes(obj, spec_obj)

    def filter_all(self, filter_obj_list, spec_obj):
        for obj in filter_obj_list:
            if self._filter_one(obj, spec_obj):
                yield obj

    def run_filter_for_index(self, index):
        return not (self.run_filter_once_per_request and index > 0)

    def host_passes(self, host_state, spec_obj):
        raise NotImplementedError()


class _LocalBaseWeigher(metaclass=abc.ABCMeta):
    """Same shape as ``nova.scheduler.weights.BaseHostWeigher``."""

    minval = None
    maxval = None

    def weight_multiplier(self, host_state):
        return 1.0

    @abc.abstractmethod
    def _weigh_object(self, obj, weight_properties):
        """Weigh one host state."""

    def weigh_objects(self, weighed_obj_list, weight_properties):
        weights = []
        for obj in weighed_obj_list:
            weight = self._weigh_object(obj.obj, weight_properties)
            if self.minval is not None:
                weight = max(weight, self.minval)
            if self.maxval is not None:
                weight = min(weight, self.maxval)
            weights.append(weight)
        return weights


def _nova_bases():
    # find_spec first: costs a path scan, not an import, when Nova is absent.
    if importlib.util.find_spec('nova') is None:
        return None
    try:
        from nova.scheduler import filters as nova_filters
        from nova.scheduler import weights as nova_weights
    except ImportError as exc:
        get_logger(__name__).warning(
            'nova is installed but its scheduler bases do not import (%s); '
            'using the local bases', exc)
        return None
    return nova_filters.BaseHostFilter, nova_weights.BaseHostWeigher


_bases = _nova_bases()
NOVA_AVAILABLE = _bases is not None
if NOVA_AVAILABLE:
    BaseHostFilter, BaseWeigher = _bases
else:
    BaseHostFilter, BaseWeigher = _LocalBaseHostFilter, _LocalBaseWeigher
del _bases
