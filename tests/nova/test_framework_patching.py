"""The Nova-venv case modules run as Nova's own functional tests do:
eventlet's monkey patch is in place before oslo.db is imported, so that
oslo.db's per-context transaction state is greenthread-local.

Made from the unpatched ``threading.local``, it is shared by every
greenthread of the process: two greenthreads using one context then see
each other's transaction, and Nova's resource tracker (whose ComputeNode
keeps the context it was loaded with) fails now and then with "Can't
upgrade a READER transaction to a WRITER mid-transaction" -- a race that
shows only under load, so the import order is checked directly here.
"""

import subprocess

import pytest

from tests.nova import venv

pytestmark = pytest.mark.slow

CASE_MODULES = ['cases_manage', 'cases_nova_own', 'cases_partial_offload',
                'cases_rbd']
CHECK = """
import tests.nova.framework.%s
from eventlet import corolocal
from oslo_db.sqlalchemy import enginefacade
local = enginefacade._TransactionContextTLocal
print(issubclass(local, corolocal.local), local.__mro__[1])
"""


@pytest.mark.parametrize('module', CASE_MODULES)
def test_transaction_state_is_greenthread_local(module):
    proc = subprocess.run(
        [venv.nova_python(), '-c', CHECK % module], cwd=venv.REPO,
        env=venv.clean_env(PYTHONPATH=venv.REPO,
                           LIFECYCLE_TEST_CEPH_CONF='unused'),
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    verdict = proc.stdout.strip().splitlines()[-1]
    assert verdict.startswith('True'), (
        '%s imports oslo.db before eventlet is patched: %s' % (module,
                                                              verdict))
