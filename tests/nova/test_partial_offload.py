"""The partial-offload scenarios in Nova's own functional framework.

Each case of ``tests/nova/framework/cases_*.py`` runs in the Nova venv
(``tests.nova.venv``) with this repository importable; one subprocess per
module, its per-case outcomes become the pytest results below. Under
``CI=true`` a missing Nova venv fails these tests.
"""

import json
import subprocess
import tempfile
import time

import pytest

from tests.nova import venv

pytestmark = pytest.mark.slow

MODULES = {
    'cases_partial_offload': [
        'PartialOffloadQcow2Test.test_shelve_keeps_disk_unshelve_elsewhere_in_group',
        'PartialOffloadQcow2Test.test_unshelve_prefers_original_host',
        'PartialOffloadQcow2Test.test_group_down_stays_offloaded_with_disk',
        'PartialOffloadQcow2Test.test_host_without_group_is_stock',
        'PartialOffloadQcow2Test.test_host_that_cannot_see_the_disk_fails_cleanly',
        'PartialOffloadQcow2Test.test_image_cache_keeps_retained_base',
        'PartialOffloadQcow2Test.test_delete_while_offloaded_disk_removed',
        'PartialOffloadQcow2Test.test_escalation_then_stock_unshelve',
        'PartialOffloadQcow2Test.test_escalation_by_storage_watermark',
        'PartialOffloadQcow2Test.test_filter_reads_instance_only_for_unshelve',
        'PartialOffloadQcow2Test.test_hint_keeps_working',
        'PartialOffloadQcow2Test.test_shelve_without_offload_then_unshelve',
        'PartialOffloadFlatTest.test_shelve_keeps_disk_unshelve_elsewhere_in_group',
        'PartialOffloadVolumeBackedTest.test_volume_backed_is_stock',
    ],
    'cases_manage': [
        'ManageTest.test_shelved_list_shows_why_unshelve_failed',
        'ManageTest.test_group_full_stays_offloaded_and_manage_shows_why',
        'ManageTest.test_disks_audit_and_cleanup',
    ],
    # Nova's own shelve/unshelve functional tests, plugin as compute_driver.
    'cases_nova_own': [
        'StatelessFirmwareWithPlugin.test_plugin_driver_loaded',
        'StatelessFirmwareWithPlugin.test_shelve_and_unshelve_to_same_host',
        'StatelessFirmwareWithPlugin.test_shelve_and_unshelve_to_different_host',
        'VTPMWithPlugin.test_shelve_server',
        'VDPAWithPlugin.test_shelve_offload',
        'VDPAWithPlugin.test_unshelve_to_same_host',
        'VDPAWithPlugin.test_unshelve_to_different_host',
        'PCIWithPlugin.test_unshelve_after_offload',
    ],
}

TIMEOUT = 1200  # seconds per runner process
_results = {}
_running = {}


def _start(modules) -> None:
    """One runner process per module of ``modules``, all started at once
    (they are independent; side by side they share the machine's cores),
    their output in files (pipes could fill while another is being
    read)."""
    python = venv.nova_python()
    for module in modules:
        if module in _results or module in _running:
            continue
        # Only the listed cases: the Nova classes hold many more tests.
        names = ['tests.nova.framework.%s.%s' % (module, case)
                 for case in MODULES[module]]
        out = tempfile.TemporaryFile('w+')
        err = tempfile.TemporaryFile('w+')
        proc = subprocess.Popen(
            [python, '-m', 'tests.nova.framework.run'] + names,
            cwd=venv.REPO, env=venv.clean_env(PYTHONPATH=venv.REPO),
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
        _running[module] = (proc, out, err, time.monotonic())


def _run(module, selected):
    """The outcomes of ``module``'s cases; the runners of the other
    ``selected`` modules start meanwhile. A failed runner fails the case
    that waited for it; the next case of that module runs it again."""
    if module not in _results:
        _start([module] + [m for m in selected if m != module])
        proc, out, err, started = _running.pop(module)
        try:
            proc.wait(max(TIMEOUT - (time.monotonic() - started), 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        out.close()
        err.close()
        lines = stdout.strip().splitlines()
        try:
            _results[module] = json.loads(lines[-1])
        except (IndexError, ValueError):
            pytest.fail('runner failed (rc %s):\n%s' % (
                proc.returncode, (stdout + stderr)[-8000:]))
    return _results[module]


@pytest.fixture(scope='module')
def selected(request):
    """The modules whose cases this session runs; no runner is left
    behind when the module's tests are done."""
    modules = []
    for item in request.session.items:
        spec = getattr(item, 'callspec', None)
        if item.module is request.module and spec is not None:
            if spec.params['module'] not in modules:
                modules.append(spec.params['module'])
    yield modules
    for proc, out, err, _ in _running.values():
        proc.kill()
        proc.wait()
        out.close()
        err.close()
    _running.clear()


@pytest.mark.parametrize('module,case', [
    (module, case) for module, cases in MODULES.items() for case in cases])
def test_nova_framework_case(module, case, selected):
    outcomes = _run(module, selected)
    test_id = 'tests.nova.framework.%s.%s' % (module, case)
    assert test_id in outcomes, 'case did not run; ran: %s' % sorted(outcomes)
    outcome = outcomes[test_id]
    assert outcome['status'] == 'passed', venv.failure_summary(
        outcome['detail'])
