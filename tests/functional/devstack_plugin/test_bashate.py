"""bashate, devstack's own linter, over the plugin's scripts."""

import os
import shutil
import subprocess
import sys

from tests.conftest import require
from tests.functional.devstack_plugin.stand_in import DEVSTACK


def _bashate():
    for candidate in (os.path.join(os.path.dirname(sys.executable),
                                   'bashate'), shutil.which('bashate')):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def test_bashate():
    bashate = _bashate()
    require(bashate is not None, 'bashate (test-requirements.txt)')
    files = [os.path.join(DEVSTACK, 'plugin.sh'),
             os.path.join(DEVSTACK, 'settings')]
    files += sorted(os.path.join(DEVSTACK, 'lib', name)
                    for name in os.listdir(os.path.join(DEVSTACK, 'lib')))
    # Every rule is an error, the 79-column limit included.
    result = subprocess.run([bashate, '-v', '-e', 'E*'] + files,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in files:
        assert 'Running bashate on %s' % path in result.stdout
