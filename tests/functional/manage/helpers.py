"""Running ``lifecycle-manage`` and looking at what it changed."""

import contextlib
import datetime
import hashlib
import io
import json
import os
import stat
import subprocess
import sys

import libvirt
import sqlalchemy as sa
from oslo_config import cfg

import lifecycle.conf as lifecycle_conf
from lifecycle.cmd import manage
from lifecycle.db import models

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
MiB = 1024 * 1024
CATEGORIES = ('orphan-domain', 'orphan-disk', 'unused-base',
              'stale-metadata', 'missing-disk')


# -- running the command ------------------------------------------------------

def write_config(aio, path, with_db: bool = True,
                 libvirt_uri: str = 'test:///default',
                 sections: dict | None = None) -> str:
    """The all-in-one's configuration for lifecycle-manage; ``sections``:
    more options, {section: {option: value}}."""
    lines = ['[DEFAULT]', '[aio]', 'state_dir = %s' % aio.state_dir,
             'hosts = %s' % ', '.join('%s:%s' % hg
                                      for hg in aio.hosts.items()),
             '[libvirt]', 'connection_uri = %s' % libvirt_uri]
    if with_db:
        lines += ['[database]', 'connection = %s' % aio.db.url]
    for section, options in (sections or {}).items():
        lines.append('[%s]' % section)
        lines += ['%s = %s' % item for item in options.items()]
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


def tree_snapshot(*roots) -> dict:
    """Every entry under ``roots`` (symlinks not followed): full mode,
    owner, size, mtime and, for files, a hash of the content -- what shows
    that nothing was created, removed, written or chmod-ed. Access times
    are left out (reading is allowed)."""
    found = {}
    for root in roots:
        if not os.path.lexists(root):
            found[root] = None
            continue
        entries = [root]
        for dirpath, dirnames, filenames in os.walk(root):
            entries += [os.path.join(dirpath, n) for n in dirnames + filenames]
        for path in entries:
            st = os.lstat(path)
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(path, 'rb') as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            found[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_size,
                           st.st_mtime_ns, digest,
                           os.readlink(path) if stat.S_ISLNK(st.st_mode)
                           else None)
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
