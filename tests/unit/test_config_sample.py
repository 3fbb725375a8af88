"""The sample configuration made by oslo-config-generator (``tox -e
genconfig``) from etc/lifecycle/lifecycle-config-generator.conf.

The generator finds the project's options through the ``lifecycle`` entry
point of the ``oslo.config.opts`` namespace (setup.cfg). Under CI=true the
package is installed (tools/setup.sh, tox), so the entry point must be there.
In a bare checkout that was never installed, the entry points of setup.cfg
are declared in a throw-away ``.dist-info`` directory put on PYTHONPATH, so
the real generator still runs, in a subprocess.
"""

import os
import re
import subprocess
import sys

import pytest
from oslo_config import cfg

import lifecycle.conf as lifecycle_conf
from lifecycle.conf import opts as lifecycle_opts
from tests import entry_points

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
GENERATOR_CONF = os.path.join('etc', 'lifecycle',
                              'lifecycle-config-generator.conf')

OPTION_LINE = re.compile(r'^#([A-Za-z_][\w.-]*) =( |$)')


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    """The sample written by the real generator."""
    base = tmp_path_factory.mktemp('genconfig')
    env = entry_points.python_env(str(base / 'entry-points'))
    output = base / 'lifecycle.conf.sample'
    result = subprocess.run(
        [sys.executable, '-m', 'oslo_config.generator',
         '--config-file', GENERATOR_CONF, '--output-file', str(output)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return output.read_text()


def parse_sample(text):
    """{group: {option dest: its block of comment lines, option line
    included}}, as the generator writes them."""
    groups: dict[str, dict[str, str]] = {}
    current = None
    block: list[str] = []
    for line in text.splitlines():
        if line.startswith('[') and line.endswith(']'):
            current = line[1:-1]
            groups.setdefault(current, {})
            block = []
        elif not line.strip():
            block = []
        else:
            block.append(line)
            match = OPTION_LINE.match(line)
            if match and current is not None:
                groups[current][match.group(1)] = '\n'.join(block)
                block = []
    return groups


def project_options():
    """(group, opt) of every option of the ``lifecycle`` namespace."""
    for group, opts in lifecycle_opts.list_opts():
        name = group if isinstance(group, str) else group.name
        for opt in opts:
            yield name, opt


def _options_of(conf):
    # oslo.config has no public iterator over registered options.
    found = {('DEFAULT', info['opt'].dest)
             for info in conf._opts.values() if not info.get('cli')}
    for name, group in conf._groups.items():
        found |= {(name, info['opt'].dest) for info in group._opts.values()}
    return found


def registered_options():
    """(group, dest) of every option ``lifecycle.conf.register_all``
    registers (the project's own and the libraries' ones it registers), on a
    private ConfigOpts; what a bare ConfigOpts has (``config_source``) is
    oslo.config's, not ours."""
    conf = cfg.ConfigOpts()
    lifecycle_conf.register_all(conf)
    return sorted(_options_of(conf) - _options_of(cfg.ConfigOpts()))


def test_generator_uses_the_project_namespace(sample):
    assert '# From lifecycle\n' in sample
    assert '# From oslo.messaging\n' in sample
    assert '# From oslo.db\n' in sample
    assert '# From oslo.log\n' in sample


def test_every_project_option_is_in_the_sample(sample):
    groups = parse_sample(sample)
    missing = ['[%s] %s' % (group, opt.dest)
               for group, opt in project_options()
               if opt.dest not in groups.get(group, {})]
    assert not missing, 'options missing from the sample: %s' % missing


def test_every_registered_option_is_in_the_sample(sample):
    """Every option the project registers is listed: a module that
    registers options without listing them in ``list_opts``, or a library
    namespace missing from the generator's configuration, fails here."""
    groups = parse_sample(sample)
    registered = registered_options()
    assert ('DEFAULT', 'transport_url') in registered
    assert ('database', 'connection') in registered
    missing = ['[%s] %s' % (group, dest) for group, dest in registered
               if dest not in groups.get(group, {})]
    assert not missing, 'registered but not in the sample: %s' % missing


def test_every_option_documents_its_possible_values(sample):
    """The project's rule: help text on every option, and for every option
    that is not a boolean the possible values (written in the help, or
    rendered by the generator from the option's ``choices``)."""
    groups = parse_sample(sample)
    no_help, no_values = [], []
    for group, opt in project_options():
        name = '[%s] %s' % (group, opt.dest)
        if not (opt.help or '').strip():
            no_help.append(name)
        if isinstance(opt, cfg.BoolOpt):
            continue
        block = groups.get(group, {}).get(opt.dest, '')
        if 'Possible values' not in block:
            no_values.append(name)
    assert not no_help, 'options without help: %s' % no_help
    assert not no_values, (
        'options whose help does not give "Possible values": %s' % no_values)
