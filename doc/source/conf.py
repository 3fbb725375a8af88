"""Sphinx configuration of the shelve-lifecycle documentation.

Build: ``tox -e docs`` or ``sphinx-build -W -b html doc/source
doc/build/html`` from the repository root (warnings are errors). The
configuration reference is rendered by oslo.config's ``show-options``
directive from the ``oslo.config.opts`` entry points, so the project must be
installed (``pip install -e .``).
"""

project = 'shelve-lifecycle'
author = 'shelve-lifecycle developers'
copyright = '2026, shelve-lifecycle developers'

extensions = [
    'oslo_config.sphinxext',
]

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
