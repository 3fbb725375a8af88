"""The documentation's sources (doc/source/*.rst) say what the code does,
read without a Sphinx build (the build: tests/functional/test_docs_build.py):
the CLI reference names every ``lifecycle-manage`` action and exit code, the
option table of multihost.rst every option."""

import os
import re

from lifecycle.cmd import manage
from lifecycle.conf import opts as lifecycle_opts
from lifecycle.manage import EXIT_CODES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SOURCE = os.path.join(REPO, 'doc', 'source')


def test_cli_reference_covers_every_action_and_exit_code():
    with open(os.path.join(SOURCE, 'cli.rst')) as f:
        text = f.read()
    for category, action in manage._ARGUMENTS:
        assert '``%s %s' % (category, action) in text, (category, action)
    codes = [code for code, _ in EXIT_CODES]
    assert codes == list(range(len(codes))), codes
    for code in codes:
        assert '\n%d     ' % code in text, code
    doc = manage.__doc__
    for code in codes:
        assert '* %d' % code in doc, code


def test_docs_name_no_schema_revision_as_the_one_needed():
    """The services' "this release needs <revision>" line is quoted with a
    placeholder: a literal revision goes stale with the next migration (it
    said 0001, then 0003, while the head had moved on)."""
    for name in sorted(os.listdir(SOURCE)) + ['../../README.rst']:
        if not name.endswith('.rst'):
            continue
        with open(os.path.join(SOURCE, name)) as f:
            text = ' '.join(f.read().split())
        found = re.findall(r'release needs (\S+?):', text)
        assert set(found) <= {'HEAD'}, (name, found)


def test_multihost_option_table_names_every_option():
    """"Which service reads which option" (multihost.rst) has a row for
    every option: a whole section (``[group]``) or the option by name (a
    row's later names belong to the last ``[group]`` named before them)."""
    with open(os.path.join(SOURCE, 'multihost.rst')) as f:
        text = f.read()
    table = text[text.index('Which service reads which option'):
                 text.index('Where the services find their configuration')]
    covered: dict[str, set[str]] = {}
    for names in re.findall(r'^   \* - (.*)$', table, re.MULTILINE):
        group = None
        for m in re.finditer(r'``(?:\[([^\]]+)\])?\s*([a-z0-9_]*)``', names):
            group = m.group(1) or group
            covered.setdefault(group, set()).add(m.group(2) or '*')
    missing = [
        (group, opt.dest) for group, options in lifecycle_opts.list_opts()
        for opt in options
        if not covered.get(group, set()) & {'*', opt.dest, opt.name}]
    assert not missing, missing
