"""The stand-in of devstack, a fresh one per test."""

import pytest

from tests.functional.devstack_plugin.stand_in import Devstack


@pytest.fixture
def devstack(tmp_path):
    return Devstack(tmp_path)
