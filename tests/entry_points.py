"""The project's ``oslo.config.opts`` entry points for a subprocess, also in
a checkout that is not pip-installed (CI always installs it)."""

import configparser
import importlib.metadata
import os

import pytest

from tests.conftest import IN_CI

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def opts_entry_point_dir(base: str) -> str | None:
    """A PYTHONPATH entry declaring the ``oslo.config.opts`` entry points of
    setup.cfg, or None when the installed package already declares them."""
    names = {ep.name for ep in
             importlib.metadata.entry_points(group='oslo.config.opts')}
    if 'lifecycle' in names:
        return None
    if IN_CI:
        pytest.fail('the oslo.config.opts entry point "lifecycle" is missing: '
                    'under CI=true the package must be installed '
                    '(pip install -e .)', pytrace=False)
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(os.path.join(REPO, 'setup.cfg'))
    entry_points = setup_cfg['entry_points']['oslo.config.opts']
    dist_info = os.path.join(base, 'shelve_lifecycle_checkout-0.dist-info')
    os.makedirs(dist_info)
    with open(os.path.join(dist_info, 'METADATA'), 'w') as f:
        f.write('Metadata-Version: 2.1\nName: shelve-lifecycle-checkout\n'
                'Version: 0\n')
    with open(os.path.join(dist_info, 'entry_points.txt'), 'w') as f:
        f.write('[oslo.config.opts]\n%s\n' % entry_points.strip())
    return base


def python_env(base: str) -> dict:
    """Environment for a subprocess that sees the project's
    ``oslo.config.opts`` entry points (``base``: where to declare them when
    the package is not installed)."""
    env = dict(os.environ)
    paths = [REPO]
    extra = opts_entry_point_dir(base)
    if extra:
        paths.append(extra)
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    return env
