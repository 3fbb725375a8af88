"""Sphinx configuration of the shelve-lifecycle documentation.

Build: ``tox -e docs`` or ``sphinx-build -W -b html doc/source
doc/build/html`` from the repository root (warnings are errors). The
configuration reference is rendered by oslo.config's ``show-options``
directive from the ``oslo.config.opts`` entry points, the policy reference
by oslo.policy's ``show-policy`` from the ``oslo.policy.policies`` ones, so
the project must be installed (``pip install -e .``). The sample policy file
is generated at each build into ``_static/`` (not kept in git).
"""

project = 'shelve-lifecycle'
author = 'shelve-lifecycle developers'
copyright = '2026, shelve-lifecycle developers'

extensions = [
    'oslo_config.sphinxext',
    'oslo_policy.sphinxext',
    'oslo_policy.sphinxpolicygen',
]

# oslo_policy.sphinxpolicygen: _static/lifecycle.policy.yaml.sample, what
# ``tox -e genpolicy`` writes, rendered and offered for download by
# policy-reference.rst.
policy_generator_config_file = (
    '../../etc/lifecycle/lifecycle-policy-generator.conf')
sample_policy_basename = '_static/lifecycle'

root_doc = 'index'
source_suffix = {'.rst': 'restructuredtext'}
exclude_patterns = ['_build']
templates_path = []
html_static_path = []
html_theme = 'alabaster'
html_title = 'shelve-lifecycle'
pygments_style = 'sphinx'
# Every ``:doc:``/``:ref:``/``:option:`` must resolve (with -W: an error).
nitpicky = True
