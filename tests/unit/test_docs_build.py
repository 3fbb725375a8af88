"""The documentation under doc/ builds with Sphinx without a single warning
(``sphinx-build -W``, as ``tox -e docs``), and says what the code does: the
configuration reference lists every option of the project, the CLI reference
every ``lifecycle-manage`` action and exit code."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from lifecycle import policies
from lifecycle.cmd import manage
from lifecycle.conf import opts as lifecycle_opts
from lifecycle.manage import EXIT_CODES
from tests.conftest import require
from tests.unit.test_config_sample import _python_env

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SOURCE = os.path.join(REPO, 'doc', 'source')


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    require(importlib.util.find_spec('sphinx') is not None,
            'Sphinx (doc/requirements.txt)')
    base = tmp_path_factory.mktemp('docs')
    out = base / 'html'
    result = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html',
         '-d', str(base / 'doctrees'), SOURCE, str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env=_python_env(str(base)))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert 'WARNING' not in result.stderr, result.stderr
    return out


def test_docs_build_without_warnings(built):
    for page in ('index', 'architecture', 'operator-guide', 'configuration',
                 'cli', 'multihost', 'devstack'):
        assert (built / ('%s.html' % page)).is_file(), page


def test_configuration_reference_lists_every_option(built):
    html = (built / 'configuration.html').read_text()
    for group, options in lifecycle_opts.list_opts():
        for opt in options:
            assert 'id="%s.%s"' % (group, opt.dest) in html, (group, opt.dest)


def test_policy_reference_lists_every_rule_and_the_sample(built):
    html = (built / 'policy-reference.html').read_text()
    sample = os.path.join(SOURCE, '_static', 'lifecycle.policy.yaml.sample')
    with open(sample) as f:
        sample_text = f.read()
    for rule in policies.list_rules():
        # The rules' reference (show-policy) and the generated sample.
        literal = ('<code class="docutils literal notranslate"><span '
                   'class="pre">%s</span></code>' % rule.name)
        assert literal in html, rule.name
        assert '#"%s": "%s"' % (rule.name, rule.check_str) in sample_text, (
            rule.name)
    assert list((built / '_downloads').glob(
        '*/lifecycle.policy.yaml.sample')), 'no downloadable sample'


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
