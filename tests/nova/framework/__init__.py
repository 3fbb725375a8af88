"""Test cases that run inside the Nova virtualenv, in Nova's own functional
framework (``nova.tests.functional``, shipped in the nova wheel).

Nothing here is collected by the project's pytest (no ``test_*.py``
files): ``tests/nova/test_*.py`` run these modules in the Nova venv through
:mod:`tests.nova.framework.run` and turn each case's outcome into a pytest
result.
"""

# Nova's functional package monkey-patches eventlet when it is imported
# (nova/tests/functional/__init__.py). It has to come before anything that
# imports oslo.db: oslo.db's per-context transaction state is a
# threading.local, and one made from the unpatched class is shared by every
# greenthread of the process, so two greenthreads using one context (the
# resource tracker's ComputeNode keeps the context it was loaded with) see
# each other's transaction ("Can't upgrade a READER transaction to a WRITER
# mid-transaction", now and then, under load).
import nova.tests.functional  # noqa: F401
