"""Weighers: prefer the host an instance was shelved on, then spread or pack.

``ShelvedHostWeigher`` reads the scheduler hint ``shelved_host`` (the conductor
sets it from the instance's ``shelved_host`` system metadata) and gives that
host the maximal weight, every other host 0. Its default multiplier (1000.0)
outweighs any sum of ordinary 0..1 weighers, so the original host wins
whenever it passed the filters.

``FreeRamWeigher`` weighs hosts by free RAM: multiplier +1.0 spreads (most
free RAM first, the default), -1.0 packs (least free RAM first).

Multipliers come from the constructor or from the ``multiplier`` attribute,
which the conductor sets from its own configuration; nothing in ``filters/``
reads oslo.config. Nova's loader builds weighers without arguments, so every
constructor argument has a default.
"""

from filters import BaseWeigher, names, retained

#: Scheduler hint naming the host that holds the shelved instance.
SHELVED_HOST_HINT = names.HINT_SHELVED_HOST

SPREAD = 1.0
PACK = -1.0


def _hint(spec_obj, name):
    getter = getattr(spec_obj, 'get_scheduler_hint', None)
    if callable(getter):
        value = getter(name)
    else:
        value = (getattr(spec_obj, 'scheduler_hints', None) or {}).get(name)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return value


class _MultiplierMixin:
    multiplier = 1.0
    # weight_multiplier() does not depend on the host (read by
    # filters.host_state.filter_and_weigh; Nova ignores it).
    constant_multiplier = True

    def __init__(self, multiplier=None):
        if multiplier is not None:
            self.multiplier = float(multiplier)

    def weight_multiplier(self, host_state):
        return self.multiplier


class ShelvedHostWeigher(_MultiplierMixin, BaseWeigher):
    """1.0 for the host named by the ``shelved_host`` hint, 0.0 otherwise."""

    multiplier = 1000.0
    # Fixed bounds: normalisation keeps 1.0/0.0 whatever the other hosts are.
    minval = 0.0
    maxval = 1.0

    def _weigh_object(self, host_state, weight_properties):
        wanted = _hint(weight_properties, SHELVED_HOST_HINT)
        return 1.0 if wanted and host_state.host == wanted else 0.0

    def weigh_objects(self, weighed_obj_list, weight_properties):
        """As the base class's loop (1.0 or 0.0 are inside minval..maxval),
        with the hint read once per request."""
        wanted = _hint(weight_properties, SHELVED_HOST_HINT)
        if not wanted:
            return [0.0] * len(weighed_obj_list)
        return [1.0 if item.obj.host == wanted else 0.0
                for item in weighed_obj_list]


class OriginalHostWeigher(ShelvedHostWeigher):
    """As ShelvedHostWeigher, without a hint: 1.0 for the host the instance
    was shelved on, read from its retained disk's system metadata inside
    nova-scheduler (:mod:`filters.retained`, once per request, shared with
    HostAggregateGroupFilter); the ``shelved_host`` hint wins when given.
    Enable one of the two (both together count the host twice)."""

    @staticmethod
    def _wanted(weight_properties):
        wanted = _hint(weight_properties, SHELVED_HOST_HINT)
        if wanted:
            return wanted
        disk = retained.retained_disk(weight_properties)
        return disk['host'] if disk else None

    def _weigh_object(self, host_state, weight_properties):
        wanted = self._wanted(weight_properties)
        return 1.0 if wanted and host_state.host == wanted else 0.0

    def weigh_objects(self, weighed_obj_list, weight_properties):
        wanted = self._wanted(weight_properties)
        if not wanted:
            return [0.0] * len(weighed_obj_list)
        return [1.0 if item.obj.host == wanted else 0.0
                for item in weighed_obj_list]


class FreeRamWeigher(_MultiplierMixin, BaseWeigher):
    """Free RAM in MB; multiplier ``SPREAD`` (+1.0) or ``PACK`` (-1.0)."""

    multiplier = SPREAD

    def _weigh_object(self, host_state, weight_properties):
        return host_state.free_ram_mb

    def weigh_objects(self, weighed_obj_list, weight_properties):
        if self.minval is not None or self.maxval is not None:
            return super().weigh_objects(weighed_obj_list, weight_properties)
        return [item.obj.free_ram_mb for item in weighed_obj_list]
