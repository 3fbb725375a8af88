"""The real Glance of the functional tests (glance under gunicorn, noauth,
SQLite, file store), reused for the full-offload baseline: the virtualenv
from ``tests.harness.glance.build_venv`` (built once, cached
under /var/tmp) and its :class:`GlanceServer`."""

import os
import subprocess

from tests.harness import glance as glance_harness


class RunningGlance:
    def __init__(self, workdir: str) -> None:
        python = os.environ.get('LIFECYCLE_GLANCE_PYTHON')
        if not python:
            python, reason = glance_harness.build_venv()
            if python is None:
                raise RuntimeError('cannot build the Glance virtualenv: %s'
                                   % reason)
        os.makedirs(workdir, exist_ok=True)
        self.server = glance_harness.GlanceServer(python, workdir)
        self.server.configure()
        self.server.db_sync()
        self.server.start()
        version = subprocess.run(
            [python, '-c', 'from importlib import metadata as m; '
             'print(m.version("glance"), m.version("gunicorn"))'],
            capture_output=True, text=True).stdout.split()
        self.describe = {
            'glance': version[0] if version else None,
            'gunicorn': version[1] if len(version) > 1 else None,
            'store': 'file (filesystem_store_datadir on the same disk)',
            'auth': 'none (noauth, unauthenticated-context)',
            'workers': '1 gthread worker, 8 threads',
            'endpoint': self.server.endpoint,
        }

    def stop(self) -> None:
        self.server.stop()
