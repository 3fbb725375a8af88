"""The documentation under doc/ builds with Sphinx without a single warning
(``sphinx-build -W``, as ``tox -e docs``), and the built pages say what the
code does: the configuration reference lists every option of the project,
the policy reference every rule. What the reStructuredText sources say
without a build is checked in tests/unit/test_docs_text.py."""

import importlib.util
import os
import subprocess
import sys

import pytest

from lifecycle import policies
from lifecycle.conf import opts as lifecycle_opts
from tests import entry_points
from tests.conftest import require

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
        env=entry_points.python_env(str(base)))
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
