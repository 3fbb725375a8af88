"""``lifecycle-manage``: operator commands, in the nova-manage style.

Usage: ``lifecycle-manage [--config-file F] CATEGORY ACTION [options]``

Categories and actions::

    db sync [--revision R]        upgrade the schema
    db version                    print the schema revision
    shelved list [--group G] [--older-than D] [--format table|json]
    shelved show UUID [--format table|json]
    shelved offload [UUID...] [--group G] [--older-than D] [--dry-run] [--yes]
    shelved purge-deleted [--older-than D] [--dry-run] [--yes] [--format F]
    disks audit [--category C ...] [--base-min-age D] [--format F]
    disks cleanup [--category C ...] [--base-min-age D] [--dry-run] [--yes]
                  [--format F]

Durations ``D`` are a number and a unit: ``45s``, ``30m``, ``12h``,
``7d``, ``2w``.

Changing commands (``disks cleanup``, ``shelved purge-deleted``,
``shelved offload``) change something only with ``--yes`` and never with
``--dry-run``. With neither,
they print what they would do and refuse, with exit code 2; with
``--dry-run`` they print it and exit 0.

Exit codes:

* 0 — success (``disks audit``: nothing found);
* 1 — the command failed (a removal failed, an instance was not found or
  is not shelved, the database or hypervisor could not be used);
* 2 — bad usage or configuration (unknown category, action, option or
  value; a deletion without ``--yes``/``--dry-run``; no database set);
* 3 — ``disks audit`` found problems (listed on stdout).

What the commands look at (the all-in-one's configuration, or a compute
host's) is explained in :mod:`lifecycle.manage.deployment`.
"""

import logging as std_logging
import sys

from alembic import util as alembic_util
from oslo_config import cfg
from oslo_db import exception as db_exc
from oslo_log import log as logging

from lifecycle import exception
from lifecycle.conf import CONF
from lifecycle.db import api as db_api
from lifecycle.db import migration
from lifecycle.manage import CommandFailed
from lifecycle.manage import FAILED
from lifecycle.manage import PROBLEMS_FOUND  # noqa: F401 - documented code
from lifecycle.manage import SUCCESS
from lifecycle.manage import USAGE
from lifecycle.manage import UsageError
from lifecycle.manage import deployment
from lifecycle.manage import disks
from lifecycle.manage import output
from lifecycle.manage import shelved

LOG = logging.getLogger(__name__)


class DbCommands:
    """Database schema: ``db sync [--revision R]``, ``db version``."""

    def __init__(self, conf: cfg.ConfigOpts = CONF) -> None:
        self.db = db_api.Database(deployment.database_url(
            conf, must_exist=False))

    def close(self) -> None:
        self.db.dispose()

    def sync(self, revision: str = 'head') -> int:
        migration.sync(self.db, revision)
        print('Database at revision %s' % migration.current_version(self.db))
        return SUCCESS

    def version(self) -> int:
        print(migration.current_version(self.db) or 'none')
        return SUCCESS


CATEGORIES = {'db': DbCommands, 'shelved': shelved.ShelvedCommands,
              'disks': disks.DisksCommands}

# The parsed options each action takes: (dest, method keyword).
_ARGUMENTS = {
    ('db', 'sync'): ('revision',),
    ('db', 'version'): (),
    ('shelved', 'list'): ('format', 'group', 'older_than'),
    ('shelved', 'show'): ('uuid', 'format'),
    ('shelved', 'purge-deleted'): ('format', 'older_than', 'dry_run', 'yes'),
    ('shelved', 'offload'): ('format', 'uuids', 'group', 'older_than',
                             'dry_run', 'yes'),
    ('disks', 'audit'): ('format', 'categories', 'base_min_age'),
    ('disks', 'cleanup'): ('format', 'categories', 'base_min_age', 'dry_run',
                           'yes'),
}
_KEYWORD = {'format': 'fmt', 'categories': 'category'}


def _format(parser) -> None:
    parser.add_argument('--format', choices=output.FORMATS, default='table',
                        help='table (default) or one JSON document')


def _deletion(parser, what: str) -> None:
    parser.add_argument('--dry-run', action='store_true',
                        help='only list what would be %s' % what)
    parser.add_argument('--yes', action='store_true',
                        help='really delete (required to change anything)')


def _add_commands(subparsers) -> None:
    db = subparsers.add_parser('db', help=DbCommands.__doc__)
    actions = db.add_subparsers(dest='action', required=True)
    sync = actions.add_parser('sync', help='Upgrade the schema')
    sync.add_argument('--revision', default='head')
    actions.add_parser('version', help='Print the schema revision')

    category = subparsers.add_parser(
        'shelved', help=shelved.ShelvedCommands.__doc__)
    actions = category.add_subparsers(dest='action', required=True)
    listing = actions.add_parser(
        'list', help='Shelved and shelved-offloaded instances')
    listing.add_argument('--group', help='only this storage group')
    listing.add_argument('--older-than', type=output.duration,
                         help='only instances shelved longer than this')
    _format(listing)
    show = actions.add_parser(
        'show', help="One shelved instance's retained disk")
    show.add_argument('uuid')
    _format(show)
    escalate = actions.add_parser(
        'offload', help='Partial to full offload: upload retained disks to '
                        'the image service, then free them')
    escalate.add_argument('uuids', nargs='*', metavar='UUID')
    escalate.add_argument('--group', help='only this storage group')
    escalate.add_argument('--older-than', type=output.duration,
                          help='only instances shelved longer than this')
    _deletion(escalate, 'offloaded')
    _format(escalate)
    purge = actions.add_parser(
        'purge-deleted', help='Remove soft-deleted instance rows')
    purge.add_argument('--older-than', type=output.duration,
                       help='only rows deleted longer ago than this')
    _deletion(purge, 'purged')
    _format(purge)

    category = subparsers.add_parser(
        'disks', help=disks.DisksCommands.__doc__)
    actions = category.add_subparsers(dest='action', required=True)
    for name, what in (('audit', 'Find leftovers; changes nothing'),
                       ('cleanup', 'Remove what audit finds')):
        action = actions.add_parser(name, help=what)
        allowed = disks.CATEGORIES + (disks.AUDIT_ONLY if name == 'audit'
                                      else ())
        action.add_argument('--category', action='append',
                            dest='categories', choices=allowed,
                            help='only this category (repeatable)')
        action.add_argument(
            '--base-min-age', type=output.duration,
            help='unused bases placed or used more recently than this are '
                 'not counted (default %dh)' %
                 (disks.DEFAULT_BASE_MIN_AGE.total_seconds() // 3600))
        if name == 'cleanup':
            _deletion(action, 'removed')
        _format(action)


_CATEGORY_OPT = cfg.SubCommandOpt('category', title='Command categories',
                                  handler=_add_commands)


def _parse(conf: cfg.ConfigOpts, argv: list[str]) -> int | None:
    """Parse ``argv`` into ``conf``; an exit code when that failed."""
    conf.register_cli_opt(_CATEGORY_OPT)
    logging.register_options(conf)
    # stdout is the command's answer (a table or JSON): without a log file,
    # log lines go to stderr, not to oslo.log's default of stdout.
    conf.set_default('use_stderr', True)
    try:
        conf(argv, project='lifecycle')
    except cfg.Error as e:
        print('lifecycle-manage: %s' % e, file=sys.stderr)
        return USAGE
    except SystemExit as e:  # argparse: usage error (2) or --help (0)
        return e.code if isinstance(e.code, int) else USAGE
    return None


def main(argv: list[str] | None = None,
         conf: cfg.ConfigOpts | None = None) -> int:
    """Run one command; returns the exit code.

    ``conf`` (tests): a private ConfigOpts with the project's options
    registered; the process-wide logging is then left alone.
    """
    own = conf is None
    conf = CONF if own else conf
    failed = _parse(conf, sys.argv[1:] if argv is None else argv)
    if failed is not None:
        return failed
    if own:
        logging.setup(conf, 'lifecycle')
        if not conf.debug:
            # stdout carries the command's answer; alembic narrates at INFO.
            std_logging.getLogger('alembic').setLevel(std_logging.WARNING)
    category = conf.category
    key = (category.name, category.action)
    kwargs = {_KEYWORD.get(dest, dest): getattr(category, dest)
              for dest in _ARGUMENTS[key]}
    handler = None
    try:
        handler = CATEGORIES[category.name](conf)
        method = category.action.replace('-', '_')
        if method == 'list':
            method = 'list_'
        return getattr(handler, method)(**kwargs)
    except UsageError as e:
        print('lifecycle-manage: %s' % e, file=sys.stderr)
        return USAGE
    except CommandFailed as e:
        print('lifecycle-manage: %s' % e, file=sys.stderr)
        return FAILED
    except exception.LifecycleException as e:
        print('lifecycle-manage: %s' % e.format_message(), file=sys.stderr)
        return FAILED
    except (alembic_util.CommandError, db_exc.DBError) as e:
        print('lifecycle-manage: %s' % e, file=sys.stderr)
        return FAILED
    finally:
        if handler is not None:
            handler.close()


if __name__ == '__main__':
    sys.exit(main())
