"""What the categories of ``lifecycle-manage`` share on the command line:
their parsers (plain-text help, exit codes), the common options and the
confirmation of a changing command."""

import argparse
import sys

from lifecycle.manage import EXIT_CODES
from lifecycle.manage import UsageError
from lifecycle.manage import output

DURATION_HELP = ('a number and a unit: s (seconds), m (minutes), h (hours), '
                 'd (days), w (weeks); e.g. 45s, 30m, 12h, 7d, 2w')


def exit_codes_text() -> str:
    return 'Exit codes: ' + '; '.join('%d %s' % pair for pair in EXIT_CODES)


def add_category(subparsers, name: str, summary: str,
                 description: str):
    """A category's parser; returns the subparsers of its actions."""
    parser = subparsers.add_parser(
        name, help=summary, description=description,
        epilog=exit_codes_text(),
        formatter_class=argparse.HelpFormatter)
    return parser.add_subparsers(dest='action', required=True,
                                 metavar='ACTION', title='actions')


def add_action(actions, name: str, summary: str, description: str = '',
               aliases: tuple[str, ...] = ()):
    return actions.add_parser(
        name, help=summary, description=description or summary,
        epilog=exit_codes_text(), aliases=list(aliases),
        formatter_class=argparse.HelpFormatter)


def add_format(parser) -> None:
    parser.add_argument('--format', dest='fmt', choices=output.FORMATS,
                        default='table',
                        help='table (default, for people) or json (one '
                             'JSON document on stdout, for scripts)')


def add_older_than(parser, what: str) -> None:
    parser.add_argument('--older-than', type=output.duration,
                        metavar='OLDER_THAN',
                        help='only %s; OLDER_THAN is %s' % (what,
                                                            DURATION_HELP))


def add_change(parser, what: str) -> None:
    """``--dry-run`` and ``--yes`` of a command that changes something."""
    parser.add_argument('--dry-run', action='store_true',
                        help='only list what would be %s (exit 0); wins '
                             'over --yes' % what)
    parser.add_argument('--yes', action='store_true',
                        help='really do it; without --yes (or --dry-run) '
                             'nothing is changed and the exit code is 2')


def confirm(question: str, stdin=None, stderr=None) -> None:
    """Ask ``question`` on the terminal; UsageError (exit 2) unless the
    answer is yes, or when there is no terminal to ask on."""
    stdin = stdin or sys.stdin
    stderr = stderr or sys.stderr
    isatty = getattr(stdin, 'isatty', None)
    if stdin is None or stdin.closed or not (isatty and isatty()):
        raise UsageError('%s -- refusing: no terminal to confirm on (stdin '
                         'is not a terminal); add --yes to confirm' %
                         question.rstrip('?'))
    stderr.write('%s [y/N] ' % question)
    stderr.flush()
    answer = stdin.readline().strip().lower()
    if answer not in ('y', 'yes'):
        raise UsageError('not confirmed: nothing was changed')
