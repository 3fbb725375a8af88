"""Test cases that run inside the Nova virtualenv, in Nova's own functional
framework (``nova.tests.functional``, shipped in the nova wheel).

Nothing here is collected by the project's pytest (no ``test_*.py``
files): ``tests/nova/test_*.py`` run these modules in the Nova venv through
:mod:`tests.nova.framework.run` and turn each case's outcome into a pytest
result.
"""
