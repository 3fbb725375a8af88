"""The session fixture of the real Glance (tests/harness/glance.py)."""

import os

import pytest

from tests.conftest import require
from tests.harness import glance
# The names the tests use with the fixture.
from tests.harness.glance import free_port  # noqa: F401
from tests.harness.glance import make_conf  # noqa: F401


@pytest.fixture(scope='session')
def glance_server(tmp_path_factory):
    """A running :class:`GlanceServer` for the whole session."""
    python = os.environ.get('LIFECYCLE_GLANCE_PYTHON')
    if not python:
        python, reason = glance.build_venv()
        require(python is not None,
                'a virtualenv with glance==%s (%s)'
                % (glance.GLANCE_VERSION, reason))
    server = glance.GlanceServer(python,
                                 str(tmp_path_factory.mktemp('glance')))
    try:
        server.configure()
        server.db_sync()
        server.start()
        yield server
    finally:
        server.stop()
