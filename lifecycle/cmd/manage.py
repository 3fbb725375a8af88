"""``lifecycle-manage``: operator commands, in the nova-manage style.

Usage: ``lifecycle-manage [--config-file F] CATEGORY ACTION [options]``;
``lifecycle-manage --help``, ``lifecycle-manage CATEGORY --help`` and
``lifecycle-manage CATEGORY ACTION --help`` describe them, and
doc/source/cli.rst is the reference (exit codes included).

Each category is one module of :mod:`lifecycle.manage` whose
``register(subparsers)`` adds its parser and returns ``{name: class}``; the
class is built with the ConfigOpts, its method for an action is the
action's name (``-`` as ``_``, a trailing ``_`` for ``list``, ``import``)
and takes the action's parsed options as keyword arguments of the same
names. Another set of categories (e.g. for a Nova cloud) is added by
appending its registrar to :data:`REGISTRARS`. The ``nova`` category
(``lifecycle-manage [--config-file nova.conf] nova ...``, for Nova clouds
running the partial-offload plugin) is :mod:`lifecycle.nova.manage`,
imported only when asked for.

Exit codes (:data:`lifecycle.manage.EXIT_CODES`):

* 0 -- success (``disks audit``: nothing found);
* 1 -- the command failed (``disks audit``: a check failed and the others
  found nothing);
* 2 -- bad usage or configuration, or a change refused (no ``--yes``, not
  confirmed);
* 3 -- ``disks audit`` found problems (with ``ERROR:`` lines on stderr
  when a check also failed);
* 4 -- ``disks audit``/``cleanup`` refused: a storage root holds data this
  project does not own.
"""

import argparse
import inspect
import keyword
import logging as std_logging
import os
import sys
from collections.abc import Callable

from alembic import util as alembic_util
from oslo_config import cfg
from oslo_db import exception as db_exc
from oslo_log import log as logging

from lifecycle import exception
from lifecycle import version
from lifecycle.conf import CONF
from lifecycle.manage import CommandFailed
from lifecycle.manage import FAILED
from lifecycle.manage import FOREIGN_STORAGE
from lifecycle.manage import ForeignStorage
from lifecycle.manage import USAGE
from lifecycle.manage import UsageError
from lifecycle.manage import cli
from lifecycle.manage import disk_commands
from lifecycle.manage import flavors
from lifecycle.manage import image_commands
from lifecycle.manage import schema
from lifecycle.manage import services
from lifecycle.manage import shelved

LOG = logging.getLogger(__name__)

DESCRIPTION = (
    'Operator commands of shelve-lifecycle: the database schema and '
    'default flavors (db), images (image), flavors (flavor), compute '
    'services (service), shelved instances (shelved) and leftovers on '
    'instance storage (disks). Run "lifecycle-manage CATEGORY --help" for '
    'the actions of a category. Give the configuration of the deployment '
    '(--config-file): the all-in-one\'s file, or on a compute host that '
    'host\'s lifecycle-compute file (disks and shelved look at that host\'s '
    'storage and domains). Commands that change something do so only with '
    '--yes and never with --dry-run.')

#: Functions adding categories: ``register(subparsers) -> {name: class}``.
REGISTRARS: list[Callable] = [
    schema.register, image_commands.register, flavors.register,
    services.register, shelved.register, disk_commands.register,
]

_categories: dict[str, type] = {}


def _add_commands(subparsers) -> None:
    subparsers.metavar = 'CATEGORY'
    for register in REGISTRARS:
        _categories.update(register(subparsers))


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
        conf(argv, project='lifecycle', prog='lifecycle-manage',
             version=version.version_string(), description=DESCRIPTION,
             epilog=cli.exit_codes_text() + '.')
    except cfg.Error as e:
        print('lifecycle-manage: %s' % e, file=sys.stderr)
        return USAGE
    except SystemExit as e:  # argparse: usage error (2), --help/--version 0
        return e.code if isinstance(e.code, int) else USAGE
    return None


def _method_name(action: str) -> str:
    name = action.replace('-', '_')
    return name + '_' if keyword.iskeyword(name) or name == 'list' else name


def commands() -> dict[tuple[str, str], tuple[str, ...]]:
    """Every (category, action) of :data:`REGISTRARS` (deprecated aliases
    left out) with the keyword arguments its method takes."""
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    classes: dict[str, type] = {}
    for register in REGISTRARS:
        classes.update(register(subparsers))
    found = {}
    for category, cat_parser in subparsers.choices.items():
        # argparse has no public way to list a parser's sub-commands.
        [actions] = [a for a in cat_parser._actions  # noqa: SLF001
                     if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
        seen: set[int] = set()
        for action, act_parser in actions.choices.items():
            if id(act_parser) in seen:
                continue  # an alias
            seen.add(id(act_parser))
            method = getattr(classes[category], _method_name(action))
            found[(category, action)] = tuple(
                n for n in inspect.signature(method).parameters
                if n != 'self')
    return found


def __getattr__(name: str):
    if name == '_ARGUMENTS':  # the name older tests read
        return commands()
    raise AttributeError(name)


def _nova_argv(argv: list[str]) -> list[str] | None:
    """``argv`` without its ``nova`` category word, when that is the
    category (``lifecycle-manage [--config-file F] nova ...``)."""
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg in ('--config-file', '--config-dir'):
            skip = True
        elif not arg.startswith('-'):
            return argv[:i] + argv[i + 1:] if arg == 'nova' else None
    return None


def main(argv: list[str] | None = None,
         conf: cfg.ConfigOpts | None = None) -> int:
    """Run one command; returns the exit code.

    ``conf`` (tests): a private ConfigOpts with the project's options
    registered; the process-wide logging is then left alone.
    """
    argv = sys.argv[1:] if argv is None else argv
    nova_argv = _nova_argv(argv)
    if nova_argv is not None:
        # Nova clouds: Nova's configuration and databases, through Nova's
        # objects (lifecycle.nova), in a fresh process: Nova's options and
        # the project's share oslo.config's global CONF and collide.
        os.execv(sys.executable, [sys.executable, '-m',
                                  'lifecycle.nova.manage'] + nova_argv)
    own = conf is None
    conf = CONF if own else conf
    failed = _parse(conf, argv)
    if failed is not None:
        return failed
    if own:
        logging.setup(conf, 'lifecycle')
        if not conf.debug:
            # stdout carries the command's answer; alembic narrates at INFO.
            std_logging.getLogger('alembic').setLevel(std_logging.WARNING)
    category = conf.category
    handler = None
    try:
        handler = _categories[category.name](conf)
        method = getattr(handler, _method_name(category.action))
        kwargs = {name: getattr(category, name)
                  for name in inspect.signature(method).parameters}
        return method(**kwargs)
    except UsageError as e:
        print('lifecycle-manage: %s' % e, file=sys.stderr)
        return USAGE
    except ForeignStorage as e:
        print('lifecycle-manage: %s' % e, file=sys.stderr)
        return FOREIGN_STORAGE
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
