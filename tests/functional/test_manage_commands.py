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

import contextlib
import datetime
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import time
import sys
import uuid as uuidlib

import libvirt
import pytest
import sqlalchemy as sa
from oslo_config import cfg

import lifecycle.conf as lifecycle_conf
from lifecycle.cmd import manage
from lifecycle.db import models
from lifecycle.manage import cleaner as cleaner_mod
from lifecycle.storage import paths
from lifecycle.virt import domain_xml
from tests.functional.conftest import disk_of
from tests.functional.conftest import qemu_io

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
MiB = 1024 * 1024
CATEGORIES = ('orphan-domain', 'orphan-disk', 'unused-base',
              'stale-metadata', 'missing-disk')


# -- running the command ------------------------------------------------------

def write_config(aio, path, with_db: bool = True) -> str:
    lines = ['[DEFAULT]', '[aio]', 'state_dir = %s' % aio.state_dir,
             'hosts = %s' % ', '.join('%s:%s' % hg
                                      for hg in aio.hosts.items()),
             '[libvirt]', 'connection_uri = test:///default']
    if with_db:
        lines += ['[database]', 'connection = %s' % aio.db.url]
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


class TTY(io.StringIO):
    def isatty(self):
        return True


def run(config: str, *args, stderr=None) -> tuple[int, str, str]:
    """lifecycle-manage in this process (it sees test:///default's domains);
    returns (exit code, stdout, stderr)."""
    conf = cfg.ConfigOpts()
    lifecycle_conf.register_all(conf)
    out, err = io.StringIO(), stderr or io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = manage.main(['--config-file', config, *args], conf=conf)
    return code, out.getvalue(), err.getvalue()


def run_json(config: str, *args) -> tuple[int, dict]:
    code, out, err = run(config, *args, '--format', 'json')
    assert out, err
    return code, json.loads(out)


def run_process(config: str, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, '-m', 'lifecycle.cmd.manage', '--config-file',
         config, *args], capture_output=True, text=True, env=env,
        timeout=120)


# -- looking at the deployment ------------------------------------------------

def files_under(*roots) -> dict:
    """Every entry under ``roots`` (symlinks not followed) with what would
    show any change: type, size, allocation, mtime, link target."""
    found = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                found[path] = (stat.S_IFMT(st.st_mode), st.st_size,
                               st.st_blocks, st.st_mtime_ns,
                               os.readlink(path)
                               if stat.S_ISLNK(st.st_mode) else None)
    return found


# An operation's flow record goes just after its last state change (a
# deleted instance is 404 a moment before): not the commands' doing.
_FLOW_TABLES = {t.name for t in models.TASKFLOW_TABLES}


def db_rows(aio) -> dict:
    rows = {}
    with aio.db.engine.connect() as conn:
        for table in models.Base.metadata.sorted_tables:
            if table.name in _FLOW_TABLES:
                continue
            rows[table.name] = sorted(
                tuple(str(v) for v in row)
                for row in conn.execute(sa.select(table)))
    return rows


def domains() -> dict:
    conn = libvirt.open('test:///default')
    try:
        return {d.UUIDString(): d.state()[0] for d in conn.listAllDomains()}
    finally:
        conn.close()


def state_of(aio, outside) -> tuple:
    # SQLite's -wal/-shm files change on reads too; the database's content
    # is compared row by row instead.
    files = {path: info for path, info in
             files_under(aio.state_dir, outside).items()
             if not path.endswith(('.sqlite-wal', '.sqlite-shm'))}
    return (files, db_rows(aio), domains())


def found(doc: dict) -> set:
    return {(f['category'], f['resource']) for f in doc['findings']}


# -- the planted deployment ---------------------------------------------------

@pytest.fixture
def aio(make_aio):
    # The tests compare every file and row before and after a command: no
    # heartbeat may write compute_nodes meanwhile, however slow the machine.
    return make_aio(extra={('compute', 'report_interval'): 3600,
                           ('compute', 'service_down_time'): 7200})


@pytest.fixture
def config(aio, tmp_path):
    return write_config(aio, tmp_path / 'manage.conf')


def _boot(client, name, host):
    server_id = client.boot(name, host=host)
    client.wait(server_id, 'ACTIVE')
    return server_id


def _shelve(client, server_id):
    assert client.action(server_id, {'shelve': None})[0] == 202
    return client.wait(server_id, 'SHELVED_OFFLOADED')


def _old(path, hours=2):
    when = (datetime.datetime.now() - datetime.timedelta(hours=hours)
            ).timestamp()
    os.utime(path, (when, when), follow_symlinks=False)


@pytest.fixture
def planted(aio, client, tmp_path):
    """A deployment with healthy instances and one of each leftover."""
    a_root = aio.storage_path('group-a')
    b_root = aio.storage_path('group-b')
    image_id = client.default_image
    base_name = hashlib.sha1(image_id.encode()).hexdigest()
    default_base = os.path.join(a_root, '_base', base_name)
    outside = tmp_path / 'outside'
    outside.mkdir()
    secret = outside / 'secret.img'
    secret.write_bytes(b'not yours' * 100000)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
                    str(outside / 'disk'), '64M'], check=True)

    healthy = {
        'active': _boot(client, 'keep-active', 'host-a1'),
        'shelved': _boot(client, 'keep-shelved', 'host-a2'),
        'b': _boot(client, 'keep-b', 'host-b1'),
    }
    qemu_io(disk_of(aio, healthy['shelved']), 'write -P 0x5a 0 2M')
    _shelve(client, healthy['shelved'])

    # missing-disk: offloaded, then its retained disk vanished.
    lost = _boot(client, 'lost', 'host-a1')
    _shelve(client, lost)
    os.unlink(disk_of(aio, lost))

    # stale-metadata: an active instance with shelved_* keys left over.
    stale = _boot(client, 'stale', 'host-b1')
    aio.db.instance_update(stale, {}, system_metadata={
        'shelved_at': '2020-01-01T00:00:00', 'shelved_host': 'host-b1',
        'shelved_disk': '%s/disk' % stale})

    # orphan-disk 1: an instance whose delete lost track of its directory.
    gone = _boot(client, 'gone', 'host-a2')
    qemu_io(disk_of(aio, gone), 'write -P 0x11 0 3M')
    aio.driver.undefine(gone)
    aio.db.release_claim(gone)
    aio.db.instance_mark_deleted(gone)

    # orphan-disk 2: a directory no instance ever had, a real overlay over
    # the group's base with data in it, and a symlink out of the tree.
    stray = str(uuidlib.uuid4())
    stray_dir = os.path.join(a_root, stray)
    os.mkdir(stray_dir)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw',
                    '-b', default_base, os.path.join(stray_dir, 'disk'),
                    '1G'], check=True)
    qemu_io(os.path.join(stray_dir, 'disk'), 'write -P 0x22 0 4M')
    os.symlink(str(secret), os.path.join(stray_dir, 'escape'))

    # A symlink named like an instance directory, and one named like a
    # base, both pointing outside: never followed, never removed.
    link_dir = os.path.join(a_root, str(uuidlib.uuid4()))
    os.symlink(str(outside), link_dir)
    link_base = os.path.join(b_root, '_base',
                             hashlib.sha1(b'evil-image').hexdigest())
    os.symlink(str(secret), link_base)
    _old(link_base)

    # unused-base: a base in group b no disk uses, last used 2 hours ago.
    ghost_base = os.path.join(b_root, '_base',
                              hashlib.sha1(b'ghost-image').hexdigest())
    with open(ghost_base, 'wb') as f:
        f.write(os.urandom(5 * MiB))
    _old(ghost_base)

    # orphan-domain: defined straight through libvirt, with our metadata.
    ghost_domain = str(uuidlib.uuid4())
    conn = libvirt.open('test:///default')
    conn.defineXML(domain_xml.build_domain_xml(domain_xml.DomainSpec(
        uuid=ghost_domain, display_name='ghost', vcpus=1, memory_mb=128,
        disk_path=os.path.join(a_root, ghost_domain, 'disk'),
        disk_format='qcow2', host='host-a2', user_id='u', project_id='p',
        flavor_name='m1.tiny'), 'qemu'))
    conn.close()

    expected = {
        ('missing-disk', lost), ('stale-metadata', stale),
        ('orphan-disk', gone), ('orphan-disk', stray),
        ('unused-base', ghost_base), ('orphan-domain', ghost_domain)}
    allocated = {
        gone: paths.allocated_bytes(os.path.join(a_root, gone)),
        stray: paths.allocated_bytes(stray_dir),
        ghost_base: paths.allocated_bytes(ghost_base),
    }
    return {'expected': expected, 'allocated': allocated,
            'healthy': healthy, 'lost': lost, 'stale': stale, 'gone': gone,
            'stray': stray, 'ghost_base': ghost_base,
            'ghost_domain': ghost_domain, 'outside': str(outside),
            'outside_files': files_under(str(outside)),
            'secret': str(secret), 'link_dir': link_dir,
            'link_base': link_base}


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
    from lifecycle.manage import deployment
    from lifecycle.manage import disks

    conf = cfg.ConfigOpts()
    lifecycle_conf.register_all(conf)
    conf(['--config-file', config])
    scope = deployment.Deployment(conf)
    try:
        audit = disks.DiskAudit(scope, disks.CATEGORIES,
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


# -- shelved list / show ------------------------------------------------------

def test_shelved_list_and_show(aio, client, config):
    server_id = _boot(client, 'shelf', 'host-a1')
    qemu_io(disk_of(aio, server_id), 'write -P 0x33 0 3M')
    _shelve(client, server_id)
    other = _boot(client, 'other', 'host-b1')
    _shelve(client, other)
    _boot(client, 'running', 'host-a2')

    code, doc = run_json(config, 'shelved', 'list')
    assert code == 0
    assert {r['uuid'] for r in doc['shelved']} == {server_id, other}
    row = next(r for r in doc['shelved'] if r['uuid'] == server_id)
    assert row['storage_group'] == 'group-a'
    assert row['shelved_host'] == 'host-a1'
    assert row['disk'] == disk_of(aio, server_id)
    assert row['size_on_disk'] == os.lstat(
        disk_of(aio, server_id)).st_blocks * 512

    code, doc = run_json(config, 'shelved', 'list', '--group', 'group-b')
    assert [r['uuid'] for r in doc['shelved']] == [other]
    code, doc = run_json(config, 'shelved', 'list', '--older-than', '1h')
    assert (code, doc['shelved']) == (0, [])
    # Shelved "three days ago".
    aio.db.instance_update(other, {}, system_metadata={
        'shelved_at': (datetime.datetime.utcnow() -
                       datetime.timedelta(days=3)).isoformat()})
    code, doc = run_json(config, 'shelved', 'list', '--older-than', '2d')
    assert [r['uuid'] for r in doc['shelved']] == [other]

    code, out, _err = run(config, 'shelved', 'list')
    assert code == 0 and server_id in out and 'group-a' in out

    code, doc = run_json(config, 'shelved', 'show', server_id)
    assert code == 0
    disk = disk_of(aio, server_id)
    assert doc['disk'] == disk and doc['disk_present'] is True
    assert doc['storage_group'] == 'group-a'
    assert doc['since'] == aio.db.instance_get(
        server_id).system_metadata['shelved_at']
    assert doc['format'] == 'qcow2'
    assert doc['virtual_size'] == 1024 ** 3
    assert doc['size_on_disk'] == os.lstat(disk).st_blocks * 512
    assert doc['delta_over_base'] == doc['size_on_disk'] >= 3 * MiB
    assert doc['base_file'].startswith(
        os.path.join(aio.storage_path('group-a'), '_base') + os.sep)

    code, out, _err = run(config, 'shelved', 'show', server_id)
    assert code == 0 and 'delta_over_base' in out and '(%d bytes)' % \
        doc['size_on_disk'] in out


def test_exit_codes(aio, client, config, tmp_path):
    running = _boot(client, 'running', 'host-a2')
    assert run(config, 'shelved', 'show', 'not-a-uuid')[0] == 2
    assert run(config, 'shelved', 'show', str(uuidlib.uuid4()))[0] == 1
    code, _out, err = run(config, 'shelved', 'show', running)
    assert code == 1 and 'not shelved' in err
    assert run(config, 'shelved', 'list', '--older-than', '7 years')[0] == 2
    assert run(config, 'disks', 'audit', '--category', 'nope')[0] == 2
    assert run(config, 'disks', 'frobnicate')[0] == 2
    assert run(config, 'shelved', 'list', '--format', 'xml')[0] == 2
    assert run(config, 'disks', 'audit')[0] == 0

    # Configuration errors, in real processes (in this one, the aio's
    # overrides of [aio] options are visible to any ConfigOpts).
    no_db = tmp_path / 'no-db.conf'
    no_db.write_text('[DEFAULT]\n')
    result = run_process(str(no_db), 'disks', 'audit')
    assert result.returncode == 2
    assert '[database] connection is not set' in result.stderr
    no_aio_db = tmp_path / 'missing.conf'
    no_aio_db.write_text('[aio]\nstate_dir = %s\n' % (tmp_path / 'none'))
    result = run_process(str(no_aio_db), 'shelved', 'list')
    assert result.returncode == 2
    assert 'no all-in-one database' in result.stderr
    assert not (tmp_path / 'none').exists()
    # A hypervisor that cannot be reached: the audit is incomplete.
    bad_uri = tmp_path / 'bad-uri.conf'
    bad_uri.write_text(open(config).read().replace(
        'test:///default', 'qemu+tcp://127.0.0.1:1/system'))
    result = run_process(str(bad_uri), 'disks', 'audit', '--format', 'json')
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)['errors']


# -- shelved purge-deleted ----------------------------------------------------

def test_purge_deleted(aio, client, config):
    doomed = _boot(client, 'doomed', 'host-a1')
    kept = _boot(client, 'kept', 'host-a1')
    _shelve(client, doomed)
    assert client.request('DELETE', '/servers/%s' % doomed)[0] == 204
    import time
    deadline = time.monotonic() + 30
    while client.request('GET', '/servers/%s' % doomed)[0] != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    aio.db.instance_fault_create(doomed, 500, 'old trouble')
    with aio.db.session() as session:
        session.add(models.InstanceMetadata(instance_uuid=doomed, key='k',
                                            value='v'))
        session.add(models.InstanceSystemMetadata(
            instance_uuid=doomed, key='extra', value='x'))

    def rows():
        with aio.db.engine.connect() as conn:
            return {t: conn.execute(sa.select(sa.func.count()).select_from(
                models.Base.metadata.tables[t]).where(
                models.Base.metadata.tables[t].c[col] == doomed)).scalar()
                for t, col in (('instances', 'uuid'),
                               ('instance_metadata', 'instance_uuid'),
                               ('instance_system_metadata', 'instance_uuid'),
                               ('instance_faults', 'instance_uuid'))}

    before = db_rows(aio)
    assert rows() == {'instances': 1, 'instance_metadata': 1,
                      'instance_system_metadata': 5, 'instance_faults': 1}
    code, doc = run_json(config, 'shelved', 'purge-deleted', '--dry-run')
    assert code == 0
    assert [r['uuid'] for r in doc['instances']] == [doomed]
    assert doc['instances'][0]['faults'] == 1
    code, _out, err = run(config, 'shelved', 'purge-deleted')
    assert code == 2 and '--yes' in err
    code, doc = run_json(config, 'shelved', 'purge-deleted', '--yes',
                         '--older-than', '1d')
    assert (code, doc['purged'], doc['instances']) == (0, 0, [])
    assert db_rows(aio) == before

    code, doc = run_json(config, 'shelved', 'purge-deleted', '--yes')
    assert (code, doc['purged']) == (0, 1)
    assert rows() == {'instances': 0, 'instance_metadata': 0,
                      'instance_system_metadata': 0, 'instance_faults': 0}
    assert aio.db.instance_get(kept).vm_state == 'active'


def test_fully_offloaded_instances_are_no_leftovers(make_aio, client_for,
                                                    tmp_path):
    """With [shelve] offload_mode = full the disk becomes an image and the
    instance directory goes: nothing for the audit to report, and
    ``shelved list`` shows no disk."""
    aio = make_aio(extra={('shelve', 'offload_mode'): 'full'})
    client = client_for(aio.url)
    config = write_config(aio, tmp_path / 'full.conf')
    server_id = _boot(client, 'full', 'host-a1')
    _shelve(client, server_id)
    sysmeta = aio.db.instance_get(server_id).system_metadata
    assert sysmeta.get('shelved_image_id') and not sysmeta.get(
        'shelved_disk')
    assert not os.path.exists(os.path.join(aio.storage_path('group-a'),
                                           server_id))
    code, doc = run_json(config, 'disks', 'audit')
    assert (code, doc['findings']) == (0, []), doc
    code, doc = run_json(config, 'shelved', 'list')
    assert [(r['uuid'], r['size_on_disk']) for r in doc['shelved']] == [
        (server_id, None)]


def test_shelved_offload_escalates_to_full(aio, client, config):
    older = _boot(client, 'older', 'host-a1')
    _shelve(client, older)
    newer = _boot(client, 'newer', 'host-a2')
    _shelve(client, newer)
    storage = aio.storage_path('group-a')
    before = files_under(storage)

    code, _out, err = run(config, 'shelved', 'offload', older)
    assert code == 2 and '--yes' in err
    code, doc = run_json(config, 'shelved', 'offload', older, '--dry-run')
    assert code == 0 and doc['dry_run']
    assert [i['uuid'] for i in doc['instances']] == [older]
    assert files_under(storage) == before

    code, doc = run_json(config, 'shelved', 'offload', older, '--yes')
    assert code == 0, doc
    [row] = doc['instances']
    assert row['action'] == 'offloaded' and row['image_id']
    assert not os.path.exists(os.path.join(storage, older))
    assert os.path.exists(os.path.join(storage, newer, 'disk'))
    image = aio.images.get(row['image_id'])
    assert image['properties']['instance_uuid'] == older
    assert client.server(older)['lifecycle:retained_disk'] is None

    code, _out, err = run(config, 'shelved', 'offload', older, '--yes')
    assert code == 2 and older in err  # no retained disk any more
    client.action(older, {'unshelve': None})
    client.wait(older, 'ACTIVE')


def test_leftover_shelved_images_audited_and_cleaned(make_aio, client_for,
                                                     tmp_path):
    aio = make_aio(extra={('shelve', 'offload_mode'): 'full'})
    client = client_for(aio.url)
    config = write_config(aio, tmp_path / 'manage.conf')
    kept = _boot(client, 'kept', 'host-a1')
    gone = _boot(client, 'gone', 'host-a1')
    for server_id in (kept, gone):
        client.action(server_id, {'shelve': None})
    deadline = time.monotonic() + 60
    while not all(aio.db.instance_get(s).system_metadata.get(
            'shelved_image_id') and client.server(s)[
            'OS-EXT-STS:task_state'] is None for s in (kept, gone)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    gone_image = aio.db.instance_get(gone).system_metadata[
        'shelved_image_id']
    kept_image = aio.db.instance_get(kept).system_metadata[
        'shelved_image_id']
    # Deleting the instance does not delete its shelved image (as Nova).
    assert client.request('DELETE', '/servers/%s' % gone)[0] == 204
    while client.request('GET', '/servers/%s' % gone)[0] != 404:
        time.sleep(0.05)
    # An image made by hand with a -shelved name but no owner is not ours.
    aio.images.upload('bystander-shelved', aio.images.directory + '/' +
                      kept_image, 'qcow2')

    code, doc = run_json(config, 'disks', 'audit', '--category',
                         'leftover-image')
    assert code == 3
    assert [f['resource'] for f in doc['findings']] == [gone_image]
    code, doc = run_json(config, 'disks', 'cleanup', '--category',
                         'leftover-image', '--yes')
    assert code == 0
    assert [r['action'] for r in doc['results']] == ['deleted']
    assert doc['bytes_reclaimed'] > 0
    ids = {i['id'] for i in aio.images.list()}
    assert gone_image not in ids and kept_image in ids
    code, _doc = run_json(config, 'disks', 'audit', '--category',
                          'leftover-image')
    assert code == 0
