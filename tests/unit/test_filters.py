"""Scheduler filters and weighers on the plain HostState/RequestSpec."""

import json
import logging
import os
import subprocess
import sys

import pytest

import filters
from filters.host_aggregate_group import HostAggregateGroupFilter
from filters.host_state import Aggregate
from filters.host_state import filter_and_weigh
from filters.host_state import Flavor
from filters.host_state import HostState
from filters.host_state import normalize
from filters.host_state import RequestSpec
from filters.resources import RamFilter
from filters.resources import VcpuFilter
from filters.weighers import FreeRamWeigher
from filters.weighers import PACK
from filters.weighers import ShelvedHostWeigher
from filters.weighers import SPREAD

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

GROUP_A = Aggregate(1, 'agg-a', ['a1', 'a2'], {'storage_group': 'group-a'})
GROUP_B = Aggregate(2, 'agg-b', ['b1', 'ab'], {'storage_group': 'group-b'})
AZ = Aggregate(3, 'az1', ['a1', 'b1'], {'availability_zone': 'az1'})
SSD = Aggregate(4, 'ssd', ['a2', 'ab'], {'ssd': 'true'})


def host(name, *aggregates, **kw):
    defaults = dict(vcpus_total=8, vcpus_used=0, free_ram_mb=8192,
                    total_usable_ram_mb=8192)
    defaults.update(kw)
    return HostState(name, list(aggregates), **defaults)


def spec(hints=None, vcpus=1, memory_mb=512):
    return RequestSpec('00000000-0000-0000-0000-000000000001',
                       Flavor(vcpus, memory_mb), hints or {})


def passing(filter_, hosts, spec_obj):
    return [h.host for h in filter_.filter_all(hosts, spec_obj)]


@pytest.fixture
def hosts():
    return [host('a1', GROUP_A, AZ), host('a2', SSD, GROUP_A),
            host('b1', AZ, GROUP_B), host('ab', GROUP_B, SSD),
            host('lonely'), host('az-only', AZ)]


class TestHostAggregateGroupFilter:
    def test_contract(self):
        assert issubclass(HostAggregateGroupFilter, filters.BaseHostFilter)
        assert HostAggregateGroupFilter.run_filter_once_per_request is True
        assert HostAggregateGroupFilter().run_filter_for_index(1) is False
        if not filters.NOVA_AVAILABLE:
            assert filters.BaseHostFilter is filters._LocalBaseHostFilter
            assert filters.BaseWeigher is filters._LocalBaseWeigher

    def test_group_match_with_several_aggregates_per_host(self, hosts):
        f = HostAggregateGroupFilter()
        assert passing(f, hosts, spec({'storage_group': ['group-a']})) == [
            'a1', 'a2']
        assert passing(f, hosts, spec({'storage_group': ['group-b']})) == [
            'b1', 'ab']

    def test_aggregates_without_storage_group_do_not_match(self, hosts):
        f = HostAggregateGroupFilter()
        assert not f.host_passes(host('az-only', AZ, SSD),
                                 spec({'storage_group': ['group-a']}))
        assert not f.host_passes(host('lonely'),
                                 spec({'storage_group': ['group-a']}))

    def test_unknown_group_passes_nothing(self, hosts):
        f = HostAggregateGroupFilter()
        assert passing(f, hosts, spec({'storage_group': ['nowhere']})) == []

    @pytest.mark.parametrize('hints', [
        {}, {'other': ['x']}, {'storage_group': []}, {'storage_group': ''},
        {'storage_group': None}])
    def test_no_hint_passes_every_host(self, hosts, hints):
        f = HostAggregateGroupFilter()
        assert passing(f, hosts, spec(hints)) == [h.host for h in hosts]

    def test_no_hints_at_all(self, hosts):
        s = spec()
        s.scheduler_hints = None
        assert len(passing(HostAggregateGroupFilter(), hosts, s)) == 6

    def test_hint_as_str(self, hosts):
        f = HostAggregateGroupFilter()
        assert passing(f, hosts, spec({'storage_group': 'group-b'})) == [
            'b1', 'ab']

    def test_hint_in_a_plain_object_without_get_scheduler_hint(self, hosts):
        class Bare:
            scheduler_hints = {'storage_group': ['group-a']}

        assert passing(HostAggregateGroupFilter(), hosts, Bare()) == [
            'a1', 'a2']

        Bare.scheduler_hints = {'storage_group': 'group-b'}
        assert passing(HostAggregateGroupFilter(), hosts, Bare()) == [
            'b1', 'ab']

    def test_rebuild_check_is_not_filtered(self, hosts):
        hints = {'storage_group': ['group-a'], '_nova_check_type': ['rebuild']}
        assert len(passing(HostAggregateGroupFilter(), hosts,
                           spec(hints))) == 6

    def test_rejection_logged_at_debug_with_reason(self, caplog):
        caplog.set_level(logging.DEBUG)
        f = HostAggregateGroupFilter()
        assert not f.host_passes(host('b1', GROUP_B, AZ),
                                 spec({'storage_group': ['group-a']}))
        records = [r for r in caplog.records
                   if r.name == 'filters.host_aggregate_group']
        assert len(records) == 1
        assert records[0].levelno == logging.DEBUG
        msg = records[0].getMessage()
        assert 'b1' in msg and 'group-a' in msg and 'group-b' in msg


class TestRequestSpec:
    def test_get_scheduler_hint_like_nova(self):
        s = spec({'one': ['x'], 'two': ['x', 'y'], 'str': 'z'})
        assert s.get_scheduler_hint('one') == 'x'
        assert s.get_scheduler_hint('two') == ['x', 'y']
        assert s.get_scheduler_hint('str') == 'z'
        assert s.get_scheduler_hint('missing') is None
        assert s.get_scheduler_hint('missing', 'd') == 'd'
        s.scheduler_hints = None
        assert s.get_scheduler_hint('one', 'd') == 'd'

    def test_flavor_proxies(self):
        s = spec(vcpus=3, memory_mb=1024)
        assert (s.vcpus, s.memory_mb) == (3, 1024)
        assert 'scheduler_hints' in s
        assert host('h').nodename == 'h'


class TestRamFilter:
    # 4096 MB usable, 1024 free -> 3072 used.
    @pytest.mark.parametrize('ratio, requested, ok', [
        (1.0, 1024, True), (1.0, 1025, False),
        (1.5, 3072, True), (1.5, 3073, False),
        (None, 1024, True), (None, 1025, False)])
    def test_boundary_with_ratio(self, ratio, requested, ok):
        h = host('h', free_ram_mb=1024, total_usable_ram_mb=4096,
                 ram_allocation_ratio=ratio)
        assert RamFilter().host_passes(h, spec(memory_mb=requested)) is ok
        if ok:
            assert h.limits['memory_mb'] == 4096 * (ratio or 1.0)

    def test_overcommitted_host(self):
        # Used more than physical already (ratio 2): 8192 limit, 6144 used.
        h = host('h', free_ram_mb=-2048, total_usable_ram_mb=4096,
                 ram_allocation_ratio=2.0)
        assert RamFilter().host_passes(h, spec(memory_mb=2048))
        assert not RamFilter().host_passes(h, spec(memory_mb=2049))


class TestVcpuFilter:
    @pytest.mark.parametrize('ratio, used, requested, ok', [
        (1.0, 6, 2, True), (1.0, 7, 2, False),
        (4.0, 30, 2, True), (4.0, 31, 2, False),
        (16.0, 0, 8, True), (16.0, 0, 9, False),  # never above physical
        (None, 6, 2, True), (None, 7, 2, False)])
    def test_boundary_with_ratio(self, ratio, used, requested, ok):
        h = host('h', vcpus_total=8, vcpus_used=used,
                 cpu_allocation_ratio=ratio)
        assert VcpuFilter().host_passes(h, spec(vcpus=requested)) is ok
        if ok:
            assert h.limits['vcpu'] == 8 * (ratio or 1.0)

    def test_host_without_inventory_is_not_blocked(self):
        assert VcpuFilter().host_passes(host('h', vcpus_total=0), spec())


class TestWeighing:
    def ram_hosts(self):
        return [host('mid', GROUP_A, free_ram_mb=4096),
                host('full', GROUP_A, free_ram_mb=1024),
                host('empty', GROUP_A, free_ram_mb=8192),
                host('other', GROUP_B, free_ram_mb=8192)]

    def names(self, hosts):
        return [h.host for h in hosts]

    def test_normalize_like_nova(self):
        assert normalize([]) == []
        assert normalize([5, 5]) == [0.0, 0.0]
        assert normalize([0, 5, 10]) == [0.0, 0.5, 1.0]
        assert normalize([0.0, 1.0], minval=0.0, maxval=2.0) == [0.0, 0.5]

    def test_spread_is_default(self):
        result = filter_and_weigh(
            self.ram_hosts(), spec({'storage_group': ['group-a']}),
            [HostAggregateGroupFilter()], [FreeRamWeigher()])
        assert self.names(result) == ['empty', 'mid', 'full']
        assert FreeRamWeigher().weight_multiplier(None) == SPREAD

    def test_pack(self):
        result = filter_and_weigh(
            self.ram_hosts(), spec({'storage_group': ['group-a']}),
            [HostAggregateGroupFilter()], [FreeRamWeigher(PACK)])
        assert self.names(result) == ['full', 'mid', 'empty']

    def test_pack_by_attribute_set_by_conductor(self):
        weigher = FreeRamWeigher()
        weigher.multiplier = PACK
        result = filter_and_weigh(self.ram_hosts(), spec(), [], [weigher])
        assert self.names(result)[:2] == ['full', 'mid']

    @pytest.mark.parametrize('ram_multiplier', [SPREAD, PACK])
    def test_shelved_host_preferred_even_with_less_free_ram(
            self, ram_multiplier):
        hints = {'storage_group': ['group-a'], 'shelved_host': ['full']}
        result = filter_and_weigh(
            self.ram_hosts(), spec(hints), [HostAggregateGroupFilter()],
            [ShelvedHostWeigher(), FreeRamWeigher(ram_multiplier)])
        assert self.names(result)[0] == 'full'
        hints['shelved_host'] = ['empty']
        result = filter_and_weigh(
            self.ram_hosts(), spec(hints), [HostAggregateGroupFilter()],
            [ShelvedHostWeigher(), FreeRamWeigher(ram_multiplier)])
        assert self.names(result)[0] == 'empty'

    def test_shelved_host_filtered_out_is_not_chosen(self):
        hints = {'storage_group': ['group-a'], 'shelved_host': ['full']}
        result = filter_and_weigh(
            self.ram_hosts(), spec(hints, memory_mb=2048),
            [HostAggregateGroupFilter(), RamFilter()],
            [ShelvedHostWeigher(), FreeRamWeigher()])
        assert self.names(result) == ['empty', 'mid']

    def test_shelved_hint_as_str_and_absent(self):
        w = ShelvedHostWeigher()
        assert w._weigh_object(host('x'), spec({'shelved_host': 'x'})) == 1.0
        assert w._weigh_object(host('x'), spec()) == 0.0

    def test_nothing_passes(self):
        assert filter_and_weigh(self.ram_hosts(),
                                spec({'storage_group': 'none'}),
                                [HostAggregateGroupFilter(), RamFilter()],
                                [FreeRamWeigher()]) == []

    def test_filters_run_in_order_and_all_must_pass(self):
        hosts = [host('a1', GROUP_A, vcpus_used=8),
                 host('a2', GROUP_A, free_ram_mb=100),
                 host('a3', GROUP_A), host('b1', GROUP_B)]
        result = filter_and_weigh(
            hosts, spec({'storage_group': ['group-a']}, memory_mb=512),
            [HostAggregateGroupFilter(), RamFilter(), VcpuFilter()], [])
        assert self.names(result) == ['a3']


class TestRetainedDiskWithoutNova:
    """Outside nova-scheduler (the service's conductor), no instance is read:
    the hint alone decides (reading through Nova's objects is tested in
    tests/nova)."""

    def test_no_read_and_every_host_without_hint(self, monkeypatch):
        from filters import retained
        monkeypatch.setattr(retained, '_read', lambda *a: pytest.fail(
            'the instance was read'))
        hosts = [host('a1', GROUP_A), host('b1', GROUP_B)]
        spec_obj = spec({})
        assert retained.retained_disk(spec_obj) is None
        assert [h.host for h in HostAggregateGroupFilter().filter_all(
            hosts, spec_obj)] == ['a1', 'b1']

    def test_original_host_weigher_uses_the_hint(self):
        from filters.weighers import OriginalHostWeigher
        hosts = [host('a1', GROUP_A), host('a2', GROUP_A)]
        result = filter_and_weigh(
            hosts, spec({'shelved_host': ['a2']}), [],
            [OriginalHostWeigher(), FreeRamWeigher()])
        assert [h.host for h in result] == ['a2', 'a1']


def test_package_imports_nothing_heavy():
    """``filters`` must import in nova-scheduler: no service, no libvirt, no
    oslo.db/SQLAlchemy/oslo.messaging pulled in by our own modules
    (oslo.config comes with oslo.log, which Nova has)."""
    code = (
        'import sys, json\n'
        'import filters, filters.host_aggregate_group, filters.resources, '
        'filters.weighers, filters.host_state, filters.retained\n'
        'heavy = ("lifecycle", "libvirt", "oslo_db", "sqlalchemy",'
        ' "oslo_messaging")\n'
        'print(json.dumps(sorted(m for m in sys.modules'
        ' if m.split(".")[0] in heavy)))\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(out) == []
