"""The session fixture of the counting guest (tests/harness/guest.py)."""

import os

import pytest

from tests.conftest import require
from tests.harness import guest
# The names the tests use with the fixture.
from tests.harness.guest import COUNT_RE  # noqa: F401
from tests.harness.guest import SerialConsole  # noqa: F401
from tests.harness.guest import disk_count  # noqa: F401


@pytest.fixture(scope='session')
def counting_guest() -> guest.CountingGuest:
    path, reason = guest.build()
    require(path is not None,
            'the counting guest (tools/guest/build.sh: %s)' % reason)
    kernel = os.path.join(path, 'vmlinuz')
    initrd = os.path.join(path, 'initrd.img')
    kvm, why = guest.kvm_boots(kernel, initrd)
    return guest.CountingGuest(kernel, initrd, guest.CMDLINE,
                               'kvm' if kvm else 'qemu', why)
