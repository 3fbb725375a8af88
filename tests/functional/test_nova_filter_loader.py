"""Nova compatibility: nova-scheduler's own loader runs our filter.

Nova and its dependency set live in a separate virtualenv
(``tests.nova.venv``: built once under ``/var/tmp/lifecycle-nova-venv/``,
keyed by the pinned requirements and the Python version) so they never leak
into the service's environment. A script
runs there with only ``filters/`` on ``sys.path`` (the service package
``lifecycle`` is *not* importable, as on a nova-scheduler host) and:

* loads ``filters.host_aggregate_group.HostAggregateGroupFilter`` through
  ``nova.scheduler.filters.HostFilterHandler().get_matching_classes`` -- the
  path an operator writes in ``[filter_scheduler] available_filters``;
* filters real ``nova.scheduler.host_manager.HostState`` objects, whose
  ``aggregates`` are real ``nova.objects.Aggregate``, for real
  ``nova.objects.RequestSpec`` objects;
* also loads our weighers through ``HostWeightHandler`` and runs the resource
  filters on Nova HostStates (attribute names must match Nova's).

``LIFECYCLE_NOVA_PYTHON`` and ``LIFECYCLE_NOVA_VENV_ROOT``: see
``tests.nova.venv``. Under ``CI=true`` a venv that cannot be built fails the
test (``tests.conftest.require``).
"""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from tests.nova import venv
from tests.nova.venv import NOVA_VERSION, REPO, REQUIREMENTS

pytestmark = pytest.mark.slow

SCRIPT = r'''
import importlib.metadata
import importlib.util
import json
import sys

assert importlib.util.find_spec('lifecycle') is None, \
    'the service package must not be importable here'

import filters  # noqa: E402

from nova import objects  # noqa: E402
from nova.scheduler import filters as nova_filters  # noqa: E402
from nova.scheduler import host_manager  # noqa: E402
from nova.scheduler import weights as nova_weights  # noqa: E402

objects.register_all()
assert filters.NOVA_AVAILABLE
assert filters.BaseHostFilter is nova_filters.BaseHostFilter
assert filters.BaseWeigher is nova_weights.BaseHostWeigher

UUID = '6d4a9c7c-3f6b-4c55-9bb6-5b9b3d35ff0a'
AGGREGATES = {
    'agg-a': objects.Aggregate(id=1, name='agg-a', hosts=['a1', 'a2'],
                               metadata={'storage_group': 'group-a'}),
    'agg-b': objects.Aggregate(id=2, name='agg-b', hosts=['b1'],
                               metadata={'storage_group': 'group-b'}),
    'az1': objects.Aggregate(id=3, name='az1', hosts=['a1', 'b1', 'x1'],
                             metadata={'availability_zone': 'az1'}),
}
HOSTS = [('a1', ['agg-a', 'az1'], 1024), ('a2', ['agg-a'], 6144),
         ('b1', ['az1', 'agg-b'], 8192), ('x1', ['az1'], 8192),
         ('y1', [], 8192)]


def host_states():
    states = []
    for name, aggs, free_ram in HOSTS:
        state = host_manager.HostState(name, name, None)
        state.aggregates = [AGGREGATES[a] for a in aggs]
        state.total_usable_ram_mb = 8192
        state.free_ram_mb = free_ram
        state.ram_allocation_ratio = 1.0
        state.vcpus_total = 8
        state.vcpus_used = 2
        state.cpu_allocation_ratio = 4.0
        states.append(state)
    return states


def request_spec(hints, memory_mb=512):
    kwargs = dict(instance_uuid=UUID, num_instances=1,
                  flavor=objects.Flavor(vcpus=1, memory_mb=memory_mb,
                                        root_gb=1))
    if hints is not None:
        kwargs['scheduler_hints'] = hints
    return objects.RequestSpec(**kwargs)


filter_handler = nova_filters.HostFilterHandler()
group_filters = [cls() for cls in filter_handler.get_matching_classes(
    ['filters.host_aggregate_group.HostAggregateGroupFilter'])]
resource_filters = [cls() for cls in filter_handler.get_matching_classes(
    ['filters.resources.RamFilter', 'filters.resources.VcpuFilter'])]
weigh_handler = nova_weights.HostWeightHandler()
weighers = [cls() for cls in weigh_handler.get_matching_classes(
    ['filters.weighers.ShelvedHostWeigher',
     'filters.weighers.FreeRamWeigher'])]


def passing(filter_objs, spec_obj, index=0):
    result = filter_handler.get_filtered_objects(
        filter_objs, host_states(), spec_obj, index)
    return [h.host for h in result or []]


out = {
    'nova_version': importlib.metadata.version('nova'),
    'loaded': [type(f).__module__ + '.' + type(f).__name__
               for f in group_filters + resource_filters + weighers],
    'run_once': [f.run_filter_once_per_request for f in group_filters],
    'group-a': passing(group_filters, request_spec(
        {'storage_group': ['group-a']})),
    'group-b': passing(group_filters, request_spec(
        {'storage_group': ['group-b']})),
    'unknown': passing(group_filters, request_spec(
        {'storage_group': ['group-z']})),
    'empty_hints': passing(group_filters, request_spec({})),
    'other_hint': passing(group_filters, request_spec(
        {'different_host': ['b1']})),
    'hints_unset': passing(group_filters, request_spec(None)),
    'second_instance': passing(group_filters, request_spec(
        {'storage_group': ['group-a']}), index=1),
    'group-a_4096mb': passing(group_filters + resource_filters,
                              request_spec({'storage_group': ['group-a']},
                                           memory_mb=4096)),
}
for key, hints in [('weighed_no_shelved_host',
                    {'storage_group': ['group-a']}),
                   ('weighed_shelved_a1',
                    {'storage_group': ['group-a'], 'shelved_host': ['a1']})]:
    spec_obj = request_spec(hints)
    hosts = filter_handler.get_filtered_objects(group_filters, host_states(),
                                                spec_obj)
    out[key] = [w.obj.host for w in weigh_handler.get_weighed_objects(
        weighers, hosts, spec_obj)]
out['lifecycle_imported'] = sorted(
    m for m in sys.modules if m.split('.')[0] == 'lifecycle')
print(json.dumps(out))
'''


def test_requirements_file_pins_the_tested_version():
    with open(REQUIREMENTS) as f:
        lines = [line.strip() for line in f]
    assert 'nova==%s' % NOVA_VERSION in lines


@pytest.fixture(scope='module')
def nova_python():
    return venv.nova_python()


@pytest.fixture(scope='module')
def nova_results(nova_python):
    # Only filters/ on sys.path: a directory holding a link to it, so the
    # repository root (and with it ``lifecycle``) stays out of reach.
    workdir = tempfile.mkdtemp(prefix='lifecycle-nova-')
    try:
        os.symlink(os.path.join(REPO, 'filters'),
                   os.path.join(workdir, 'filters'))
        script = os.path.join(workdir, 'run_nova_filters.py')
        with open(script, 'w') as f:
            f.write(SCRIPT)
        env = venv.clean_env(PYTHONPATH=workdir)
        proc = subprocess.run([nova_python, script], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_loaded_by_nova_loader(nova_results):
    if not os.environ.get('LIFECYCLE_NOVA_PYTHON'):
        assert nova_results['nova_version'] == NOVA_VERSION
    assert nova_results['loaded'] == [
        'filters.host_aggregate_group.HostAggregateGroupFilter',
        'filters.resources.RamFilter', 'filters.resources.VcpuFilter',
        'filters.weighers.ShelvedHostWeigher',
        'filters.weighers.FreeRamWeigher']
    assert nova_results['run_once'] == [True]
    assert nova_results['lifecycle_imported'] == []


def test_only_hosts_of_the_group_pass(nova_results):
    assert nova_results['group-a'] == ['a1', 'a2']
    assert nova_results['group-b'] == ['b1']
    assert nova_results['unknown'] == []


def test_every_host_passes_without_the_hint(nova_results):
    every = ['a1', 'a2', 'b1', 'x1', 'y1']
    assert nova_results['empty_hints'] == every
    assert nova_results['other_hint'] == every
    assert nova_results['hints_unset'] == every


def test_run_once_per_request(nova_results):
    # Nova skips the filter for the 2nd instance of a multi-create request.
    assert nova_results['second_instance'] == ['a1', 'a2', 'b1', 'x1', 'y1']


def test_resource_filters_and_weighers_on_nova_objects(nova_results):
    assert nova_results['group-a_4096mb'] == ['a2']  # a1 has 1024 MB free
    assert nova_results['weighed_no_shelved_host'] == ['a2', 'a1']  # spread
    assert nova_results['weighed_shelved_a1'] == ['a1', 'a2']
