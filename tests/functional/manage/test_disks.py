"""``lifecycle-manage shelved … / disks …`` against a real populated
all-in-one: real qcow2 files in the storage groups, the real SQLite file,
domains on libvirt's test driver.

Every inconsistency is planted for real (a stray instance directory with a
qcow2 disk, a soft-deleted instance whose directory stayed, a deleted
retained disk, an old unused base, stale ``shelved_*`` rows, a domain
defined straight through libvirt) together with symlinks pointing out of the
managed tree. The commands run in-process with a private ConfigOpts (the
test driver's domains exist only in this process) and, for what does not
need the domains, as real ``lifecycle-manage`` processes.
"""

import json
import os
import re
import subprocess

from oslo_config import cfg

import lifecycle.conf as lifecycle_conf
from lifecycle.manage import cleaner as cleaner_mod
from tests.functional.conftest import disk_of

from tests.functional.manage.helpers import (
    _boot,
    _shelve,
    CATEGORIES,
    TTY,
    domains,
    files_under,
    found,
    run,
    run_json,
    run_process,
    state_of,
    write_config)


# -- disks audit / cleanup ----------------------------------------------------

def test_audit_finds_each_planted_leftover_and_nothing_else(
        aio, config, planted):
    before = state_of(aio, planted['outside'])
    code, doc = run_json(config, 'disks', 'audit')
    assert code == 3, doc
    assert found(doc) == planted['expected']
    by_resource = {f['resource']: f for f in doc['findings']}
    for resource, allocated in planted['allocated'].items():
        assert by_resource[resource]['bytes'] == allocated > 0
    assert by_resource[planted['gone']]['detail'].startswith(
        'instance deleted at')
    assert by_resource[planted['stray']]['detail'] == 'no such instance'
    assert by_resource[planted['ghost_domain']]['host'] == 'host-a2'
    assert by_resource[planted['lost']]['location'] == \
        '%s/disk' % planted['lost']
    assert doc['summary']['orphan-disk'] == {
        'count': 2, 'bytes': planted['allocated'][planted['gone']] +
        planted['allocated'][planted['stray']]}
    assert doc['errors'] == []
    # Changed nothing.
    assert state_of(aio, planted['outside']) == before

    # One category at a time.
    code, doc = run_json(config, 'disks', 'audit', '--category',
                         'unused-base', '--category', 'orphan-domain')
    assert code == 3
    assert found(doc) == {('unused-base', planted['ghost_base']),
                          ('orphan-domain', planted['ghost_domain'])}

    # A younger unused base is not a leftover yet (it may be about to be
    # used); --base-min-age decides.
    code, doc = run_json(config, 'disks', 'audit', '--category',
                         'unused-base', '--base-min-age', '3h')
    assert (code, doc['findings']) == (0, [])

    code, out, _err = run(config, 'disks', 'audit')
    assert code == 3
    for category in CATEGORIES:
        assert category in out
    assert planted['stray'] in out


def test_cleanup_dry_run_and_without_yes_change_nothing(
        aio, config, planted):
    before = state_of(aio, planted['outside'])
    code, doc = run_json(config, 'disks', 'cleanup', '--dry-run')
    assert code == 0
    assert doc['dry_run'] is True
    assert {(r['category'], r['resource']) for r in doc['results']} == \
        planted['expected']
    assert {r['category']: r['action'] for r in doc['results']} == {
        'orphan-domain': 'would undefine', 'orphan-disk': 'would remove',
        'unused-base': 'would remove', 'stale-metadata': 'would delete keys',
        'missing-disk': 'would set error'}
    assert doc['bytes_reclaimed'] == sum(planted['allocated'].values())
    assert state_of(aio, planted['outside']) == before

    # --yes with --dry-run: still a dry run.
    code, doc = run_json(config, 'disks', 'cleanup', '--dry-run', '--yes')
    assert (code, doc['dry_run']) == (0, True)
    assert state_of(aio, planted['outside']) == before

    # Neither: the plan is shown, nothing is done, usage error.
    code, out, err = run(config, 'disks', 'cleanup')
    assert code == 2
    assert 'refusing to delete without --yes' in err
    assert planted['stray'] in out
    assert state_of(aio, planted['outside']) == before


def test_cleanup_removes_exactly_the_findings(aio, client, config, planted):
    healthy = planted['healthy']
    a_root = aio.storage_path('group-a')
    kept_disks = {s: os.stat(disk_of(aio, s, 'group-b' if s in (
        healthy['b'], planted['stale']) else 'group-a')).st_ino
        for s in list(healthy.values()) + [planted['stale']]}
    domains_before = domains()
    files_before = files_under(aio.state_dir)

    code, doc = run_json(config, 'disks', 'cleanup', '--yes')
    assert code == 0, doc
    results = {(r['category'], r['resource']): r for r in doc['results']}
    assert set(results) == planted['expected']
    assert {r['category']: r['action'] for r in doc['results']} == {
        'orphan-domain': 'undefined', 'orphan-disk': 'removed',
        'unused-base': 'removed', 'stale-metadata': 'keys deleted',
        'missing-disk': 'set to error'}
    for resource, allocated in planted['allocated'].items():
        category = ('unused-base' if resource == planted['ghost_base']
                    else 'orphan-disk')
        assert results[(category, resource)]['reclaimed'] == allocated
    assert doc['bytes_reclaimed'] == sum(planted['allocated'].values())
    assert doc['summary']['orphan-disk']['done'] == 2

    # Exactly these files went: the two orphan directories (with what was
    # in them) and the unused base.
    removed = set(files_before) - set(files_under(aio.state_dir))
    gone_dirs = (os.path.join(a_root, planted['gone']),
                 os.path.join(a_root, planted['stray']))
    assert removed == {p for p in files_before
                       if p == planted['ghost_base'] or any(
                           p == d or p.startswith(d + os.sep)
                           for d in gone_dirs)}
    # Symlinks out of the tree: not followed, their targets untouched.
    assert files_under(planted['outside']) == planted['outside_files']
    assert os.path.islink(planted['link_dir'])
    assert os.path.islink(planted['link_base'])

    # The domain is undefined, the others are still there.
    after = domains()
    assert planted['ghost_domain'] not in after
    assert {u: s for u, s in domains_before.items()
            if u != planted['ghost_domain']} == after
    # Healthy disks are the same files.
    for server_id, inode in kept_disks.items():
        group = ('group-b' if server_id in (healthy['b'], planted['stale'])
                 else 'group-a')
        assert os.stat(disk_of(aio, server_id, group)).st_ino == inode

    # Stale keys are gone, the instance otherwise unchanged.
    stale = aio.db.instance_get(planted['stale'])
    assert not [k for k in stale.system_metadata if k.startswith('shelved_')]
    assert stale.vm_state == 'active'
    # The instance whose disk is lost is in error with a fault saying why;
    # its shelved_* keys stay so that a delete finds its storage group.
    server = client.server(planted['lost'])
    assert server['status'] == 'ERROR'
    assert 'Retained root disk missing' in server['fault']['message']
    assert aio.db.instance_get(planted['lost']).system_metadata[
        'shelved_storage_group'] == 'group-a'
    # The healthy shelved instance still has its retained disk.
    assert client.server(healthy['shelved'])['status'] == \
        'SHELVED_OFFLOADED'

    # One audit after one cleanup: nothing left.
    code, doc = run_json(config, 'disks', 'audit')
    assert (code, doc['findings']) == (0, []), doc

    # And the deployment still works: the errored instance can be deleted,
    # the healthy shelved one unshelved.
    assert client.request('DELETE', '/servers/%s' % planted['lost'])[0] \
        == 204
    assert client.action(healthy['shelved'], {'unshelve': None})[0] == 202
    client.wait(healthy['shelved'], 'ACTIVE')


def test_cleanup_one_category_leaves_the_others(aio, config, planted):
    code, doc = run_json(config, 'disks', 'cleanup', '--yes', '--category',
                         'stale-metadata')
    assert code == 0
    assert [(r['category'], r['resource']) for r in doc['results']] == [
        ('stale-metadata', planted['stale'])]
    code, doc = run_json(config, 'disks', 'audit')
    assert code == 3
    assert found(doc) == planted['expected'] - {
        ('stale-metadata', planted['stale'])}


def test_cleanup_rechecks_before_acting(aio, config, planted):
    """A finding that stopped being true between audit and action (here:
    the instance's disk reappeared, an unused base was used again) is
    skipped, not acted on."""
    from lifecycle.manage import locate
    from lifecycle.manage import disks
    from lifecycle.manage import findings

    conf = cfg.ConfigOpts()
    lifecycle_conf.register_all(conf)
    conf(['--config-file', config])
    scope = locate.Deployment(conf)
    try:
        audit = disks.DiskAudit(scope, findings.CATEGORIES,
                                disks.DEFAULT_BASE_MIN_AGE)
        audit.run()
        by_key = {(f.category, f.resource): f for f in audit.findings}
        lost_disk = disk_of(aio, planted['lost'])
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', lost_disk,
                        '1G'], check=True)
        os.utime(planted['ghost_base'])
        cleaner = cleaner_mod.Cleaner(audit)
        assert cleaner.apply(by_key[('missing-disk', planted['lost'])])[0] \
            == 'skipped'
        assert cleaner.apply(by_key[('unused-base',
                                     planted['ghost_base'])])[0] == 'skipped'
        assert os.path.exists(planted['ghost_base'])
        assert aio.db.instance_get(planted['lost']).vm_state == \
            'shelved_offloaded'
    finally:
        scope.close()


def test_unmounted_storage_is_reported_not_mistaken_for_lost_disks(
        aio, client, config, tmp_path):
    server_id = _boot(client, 'on-share', 'host-b1')
    _shelve(client, server_id)
    b_root = aio.storage_path('group-b')
    hidden = str(tmp_path / 'unmounted')
    os.rename(b_root, hidden)   # as if the share were not mounted
    os.mkdir(b_root)
    try:
        code, doc = run_json(config, 'disks', 'audit')
        assert code == 3
        assert found(doc) == {('unreachable-storage', b_root)}
        code, doc = run_json(config, 'disks', 'cleanup', '--yes')
        assert code == 0
        assert doc['results'] == []
        assert [f['resource'] for f in doc['not_cleaned']] == [b_root]
        assert aio.db.instance_get(server_id).vm_state == 'shelved_offloaded'
    finally:
        os.rmdir(b_root)
        os.rename(hidden, b_root)


def test_as_a_process_with_the_aio_database_by_default(aio, planted,
                                                       tmp_path):
    """A real ``lifecycle-manage`` process finds the all-in-one's database
    from ``[aio] state_dir`` alone. (The test driver's domains live in this
    process only, so a process sees the file and database findings.)"""
    config = write_config(aio, tmp_path / 'aio-only.conf', with_db=False)
    result = run_process(config, 'disks', 'audit', '--format', 'json')
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert found(doc) == {f for f in planted['expected']
                          if f[0] != 'orphan-domain'}

    before = state_of(aio, planted['outside'])
    result = run_process(config, 'disks', 'cleanup')
    assert result.returncode == 2
    assert 'Nothing was changed' in result.stdout
    result = run_process(config, 'disks', 'cleanup', '--dry-run')
    assert result.returncode == 0, result.stderr
    assert 'would be reclaimed' in result.stdout
    assert state_of(aio, planted['outside']) == before

    result = run_process(config, 'disks', 'cleanup', '--yes',
                         '--category', 'orphan-disk')
    assert result.returncode == 0, result.stderr
    total = (planted['allocated'][planted['gone']] +
             planted['allocated'][planted['stray']])
    assert 'Total: ' in result.stdout
    assert '(%d bytes)' % total in result.stdout
    assert not os.path.exists(os.path.join(aio.storage_path('group-a'),
                                           planted['stray']))


def test_on_a_compute_host_of_a_multi_host_deployment(aio, planted,
                                                     tmp_path):
    """With a compute host's configuration ([DEFAULT] host and
    instances_path, no [aio]) the audit covers that host's storage group
    and that host's instances only."""
    def host_config(host, group):
        path = tmp_path / ('%s.conf' % host)
        path.write_text(
            '[DEFAULT]\nhost = %s\ninstances_path = %s\n'
            '[database]\nconnection = %s\n'
            '[libvirt]\nconnection_uri = test:///default\n'
            % (host, aio.storage_path(group), aio.db.url))
        return str(path)

    result = run_process(host_config('host-a2', 'group-a'), 'disks',
                         'audit', '--format', 'json')
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert doc['scope'] == 'compute host (hosts host-a2)'
    assert found(doc) == {('orphan-disk', planted['gone']),
                          ('orphan-disk', planted['stray']),
                          ('missing-disk', planted['lost'])}

    result = run_process(host_config('host-b1', 'group-b'), 'disks',
                         'audit', '--format', 'json')
    assert result.returncode == 3, result.stderr
    assert found(json.loads(result.stdout)) == {
        ('unused-base', planted['ghost_base']),
        ('stale-metadata', planted['stale'])}

    result = run_process(host_config('host-b1', 'group-b'), 'shelved',
                         'show', planted['healthy']['shelved'], '--format',
                         'json')
    # Another group's disk: found through the paths its hosts report.
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['disk'] == disk_of(
        aio, planted['healthy']['shelved'])


def test_progress_bar_on_a_terminal_log_lines_otherwise(aio, config,
                                                        planted, caplog):
    tty = TTY()
    code, out, err = run(config, 'disks', 'cleanup', '--dry-run',
                         stderr=tty)
    assert code == 0
    assert '\r' in err and 'disks cleanup [' in err
    assert '\r' not in out

    caplog.set_level('INFO', logger='lifecycle.manage.output')
    code, out, err = run(config, 'disks', 'cleanup', '--dry-run')
    assert code == 0
    assert '\r' not in err
    steps = [r.getMessage() for r in caplog.records
             if re.match(r'disks cleanup: \d+/\d+ ', r.getMessage())]
    assert len(steps) == len(planted['expected'])
    # Domains go before the disks they may use, disks before bases.
    assert [s.split()[3] for s in steps] == [
        'orphan-domain', 'orphan-disk', 'orphan-disk', 'unused-base',
        'stale-metadata', 'missing-disk']
