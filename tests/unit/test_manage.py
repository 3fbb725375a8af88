"""``lifecycle-manage db``: real processes, real SQLite files, the
documented exit codes."""

import json
import os
import subprocess
import sys
from concurrent import futures

import sqlalchemy as sa

from lifecycle.db import migration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def manage(*args, config=None):
    argv = [sys.executable, '-m', 'lifecycle.cmd.manage']
    if config:
        argv += ['--config-file', str(config)]
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(argv + list(args), capture_output=True, text=True,
                          env=env, timeout=120)


def _config(tmp_path, url):
    path = tmp_path / 'lifecycle.conf'
    path.write_text('[database]\nconnection = %s\n' % url)
    return path


def test_db_sync_then_version(tmp_path):
    db_file = tmp_path / 'l.sqlite'
    config = _config(tmp_path, 'sqlite:///%s' % db_file)
    result = manage('db', 'version', config=config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'none'

    result = manage('db', 'sync', config=config)
    assert result.returncode == 0, result.stderr
    assert migration.head_version() in result.stdout
    engine = sa.create_engine('sqlite:///%s' % db_file)
    assert 'instances' in sa.inspect(engine).get_table_names()
    engine.dispose()

    result = manage('db', 'version', config=config)
    assert result.stdout.strip() == migration.head_version()


def test_usage_errors_exit_2_and_touch_nothing(tmp_path):
    result = manage('db', 'frobnicate',
                    config=_config(tmp_path, 'sqlite:///%s/x.sqlite' %
                                   tmp_path))
    assert result.returncode == 2
    assert not (tmp_path / 'x.sqlite').exists()

    no_db = tmp_path / 'empty.conf'
    no_db.write_text('[DEFAULT]\n')
    result = manage('db', 'sync', config=no_db)
    assert result.returncode == 2
    assert '[database] connection is not set' in result.stderr


def test_unknown_revision_exits_1(tmp_path):
    config = _config(tmp_path, 'sqlite:///%s/r.sqlite' % tmp_path)
    result = manage('db', 'sync', '--revision', 'nope', config=config)
    assert result.returncode == 1
    assert 'nope' in result.stderr


def _flavors(db_file):
    engine = sa.create_engine('sqlite:///%s' % db_file)
    try:
        with engine.connect() as conn:
            return sorted(tuple(r) for r in conn.execute(sa.text(
                'SELECT flavorid, name, vcpus, memory_mb, root_gb '
                'FROM flavors')))
    finally:
        engine.dispose()


def test_db_sync_seeds_the_all_in_ones_default_flavors_once(tmp_path):
    from lifecycle import deploy
    db_file = tmp_path / 'f.sqlite'
    config = _config(tmp_path, 'sqlite:///%s' % db_file)
    result = manage('db', 'sync', config=config)
    assert result.returncode == 0, result.stderr
    assert 'm1.tiny' in result.stdout
    expected = sorted((fid, name, vcpus, ram, disk) for name, (
        fid, vcpus, ram, disk) in deploy.DEFAULT_FLAVORS.items())
    assert _flavors(db_file) == expected
    assert ('1', 'm1.tiny', 1, 512, 1) in expected  # the README's flavor 1

    # Again (an upgrade): nothing duplicated, nothing created.
    result = manage('db', 'sync', '--format', 'json', config=config)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['flavors_created'] == []
    assert _flavors(db_file) == expected


def test_db_sync_leaves_a_database_with_flavors_alone(tmp_path):
    db_file = tmp_path / 'g.sqlite'
    config = _config(tmp_path, 'sqlite:///%s' % db_file)
    assert manage('db', 'sync', '--skip-flavors',
                  config=config).returncode == 0
    assert _flavors(db_file) == []
    result = manage('flavor', 'create', 'big', '--vcpus', '8', '--ram',
                    '16384', '--disk', '80', '--id', '1', config=config)
    assert result.returncode == 0, result.stderr
    # The operator's flavor (even on the default's id '1'): no seeding.
    assert manage('db', 'sync', config=config).returncode == 0
    assert _flavors(db_file) == [('1', 'big', 8, 16384, 80)]

    listed = manage('flavor', 'list', '--format', 'json', config=config)
    assert [f['name'] for f in json.loads(listed.stdout)['flavors']] == [
        'big']
    again = manage('flavor', 'create', 'big', '--vcpus', '1', '--ram', '1',
                   config=config)
    assert again.returncode == 2
    assert 'already exists' in again.stderr
    bad = manage('flavor', 'create', 'x', '--vcpus', '0', '--ram', '1',
                 config=config)
    assert bad.returncode == 2
    assert _flavors(db_file) == [('1', 'big', 8, 16384, 80)]


def test_help_and_version_exit_0_and_list_exit_codes(tmp_path):
    result = manage('--help')
    assert result.returncode == 0
    assert 'Exit codes: 0 success' in result.stdout
    assert '``' not in result.stdout  # plain text, no reST
    for category in ('db', 'image', 'flavor', 'service', 'shelved',
                     'disks'):
        assert category in result.stdout
    cases = ((('db', 'sync', '--help'), '--revision REVISION'),
             (('shelved', 'show', '--help'), 'instance'),
             (('shelved', 'list', '--help'),
              'OLDER_THAN is a number and a unit'),
             (('disks', 'audit', '--help'), '--allow-foreign-storage'),
             (('shelved', 'full-offload', '--help'), 'NOT the API'))
    # Separate processes, run side by side (each spends seconds importing).
    with futures.ThreadPoolExecutor(4) as pool:
        version = pool.submit(manage, '--version')
        results = list(pool.map(lambda case: manage(*case[0]), cases))
    version = version.result()
    assert version.returncode == 0
    assert version.stdout.strip() or version.stderr.strip()
    for (argv, wanted), result in zip(cases, results, strict=True):
        assert result.returncode == 0, result.stderr
        text = ' '.join(result.stdout.split())
        assert wanted in text, (argv, result.stdout)
        assert 'Exit codes:' in text


def test_no_action_option_shadows_the_subcommand_names():
    """An option whose dest is ``category`` or ``action`` would overwrite
    the parsed sub-command (oslo.config keeps both in one namespace)."""
    from lifecycle.cmd import manage as manage_cmd
    commands = manage_cmd.commands()
    assert ('image', 'import') in commands
    assert ('service', 'disable') in commands
    for key, params in commands.items():
        assert not {'category', 'action', 'name'} & set(params), key


def test_services_help_and_version():
    env = dict(os.environ, PYTHONPATH=ROOT)

    def run(name: str, option: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, '-m', 'lifecycle.cmd.%s' % name, option],
            capture_output=True, text=True, env=env, timeout=120)

    names = ('aio', 'api', 'conductor', 'compute')
    # Separate processes, run side by side (each spends seconds importing).
    with futures.ThreadPoolExecutor(4) as pool:
        helps = [pool.submit(run, name, '--help') for name in names]
        versions = [pool.submit(run, name, '--version') for name in names]
    for name, result, version in zip(names, helps, versions,
                                     strict=True):
        result, version = result.result(), version.result()
        assert result.returncode == 0, result.stderr
        text = ' '.join(result.stdout.split())
        assert text.startswith('usage: lifecycle-%s' % name), text[:80]
        assert 'Exit status: 0 after a clean stop' in text
        assert '``' not in text  # plain text, not reST
        assert 'ready' in text  # the description, not only the options
        assert version.returncode == 0, version.stderr
        assert (version.stdout + version.stderr).strip()
