"""``lifecycle-manage db``: real processes, real SQLite files, the
documented exit codes."""

import os
import subprocess
import sys

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
