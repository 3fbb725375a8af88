"""Output of ``lifecycle-manage``: tables or JSON on stdout, progress on
stderr.

stdout carries only the command's answer (a table, or one JSON document
with ``--format json``), so it can be piped; progress and log lines go to
stderr. On a terminal, long operations draw a one-line progress bar
(``\\r``-rewritten); otherwise each step is a plain log line.
"""

import argparse
import datetime
import json
import re
import sys
from collections.abc import Iterable, Sequence

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

FORMATS = ('table', 'json')
_DURATION = re.compile(r'^\s*(\d+)\s*([smhdw])\s*$')
_UNIT_SECONDS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 7 * 86400}


def duration(text: str) -> datetime.timedelta:
    """``7d``, ``12h``, ``30m``, ``45s``, ``2w`` as a timedelta (an argparse
    type: a bad value is a usage error, exit code 2)."""
    match = _DURATION.match(text or '')
    if not match:
        raise argparse.ArgumentTypeError(
            'invalid duration %r: use a number and a unit, one of s, m, h, '
            'd, w (e.g. 7d, 12h, 30m)' % text)
    return datetime.timedelta(
        seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def human_bytes(count: int | None) -> str:
    if count is None:
        return '-'
    value = float(count)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            return ('%d %s' % (value, unit) if unit == 'B'
                    else '%.1f %s' % (value, unit))
        value /= 1024
    raise AssertionError('unreachable')


def _cell(value) -> str:
    if value is None:
        return '-'
    if isinstance(value, (list, tuple)):
        return ', '.join(_cell(v) for v in value)
    return str(value)


def table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    """An ASCII table (prettytable's look) of ``rows``; ``columns`` are
    (key, heading) pairs."""
    headings = [heading for _key, heading in columns]
    cells = [[_cell(row.get(key)) for key, _h in columns] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells])
              for i, h in enumerate(headings)]
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def line(values):
        return '| ' + ' | '.join(v.ljust(w) for v, w in
                                 zip(values, widths, strict=True)) + ' |'
    out = [rule, line(headings), rule]
    out += [line(r) for r in cells]
    out.append(rule)
    return '\n'.join(out)


def emit(fmt: str, document, rows: Sequence[dict] | None = None,
         columns: Sequence[tuple[str, str]] | None = None,
         footer: Iterable[str] = (), stream=None) -> None:
    """Write ``document`` as JSON, or ``rows`` as a table then ``footer``
    lines."""
    stream = stream or sys.stdout
    if fmt == 'json':
        json.dump(document, stream, indent=2, sort_keys=True, default=str)
        stream.write('\n')
    else:
        if rows:
            stream.write(table(rows, columns) + '\n')
        for text in footer:
            stream.write(text + '\n')
    stream.flush()


class Progress:
    """Progress of ``total`` steps of a long operation, on stderr.

    A terminal gets a bar rewritten in place; anything else gets one log
    line per step (nothing is written to stdout).
    """

    WIDTH = 30

    def __init__(self, label: str, total: int, stream=None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, 'isatty', None)
        self.tty = bool(isatty and isatty())
        self._drawn = False

    def step(self, what: str = '') -> None:
        self.done += 1
        if self.tty:
            filled = (self.WIDTH * self.done // self.total
                      if self.total else self.WIDTH)
            self.stream.write('\r%s [%s%s] %d/%d' % (
                self.label, '#' * filled, '.' * (self.WIDTH - filled),
                self.done, self.total))
            self.stream.flush()
            self._drawn = True
        else:
            LOG.info('%(label)s: %(done)d/%(total)d %(what)s',
                     {'label': self.label, 'done': self.done,
                      'total': self.total, 'what': what})

    def close(self) -> None:
        if self._drawn:
            self.stream.write('\n')
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> 'Progress':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
