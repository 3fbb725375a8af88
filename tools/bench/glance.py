"""The real Glance of the functional tests (glance under gunicorn, noauth,
file store), reused for the full-offload baseline, its registry on
PostgreSQL in a full run: the virtualenv from
``tests.harness.glance.build_venv`` (built once, cached under /var/tmp)
and its :class:`GlanceServer`."""

import os
import subprocess

from tests.harness import glance as glance_harness


class RunningGlance:
    def __init__(self, workdir: str, postgresql: bool = False) -> None:
        """``postgresql``: Glance's registry on a new PostgreSQL database
        (dropped by :meth:`stop`) instead of SQLite, whose single write
        lock fails uploads run several at once ('database is locked')."""
        python = os.environ.get('LIFECYCLE_GLANCE_PYTHON')
        if not python:
            python, reason = glance_harness.build_venv()
            if python is None:
                raise RuntimeError('cannot build the Glance virtualenv: %s'
                                   % reason)
        os.makedirs(workdir, exist_ok=True)
        self.database_server = database = None
        if postgresql:
            from tests.harness import deployment
            self.database_server = deployment.DatabaseServer('postgresql')
            database = self.database_server.create()
        self.server = glance_harness.GlanceServer(python, workdir, database)
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
            'database': 'PostgreSQL' if postgresql else 'SQLite',
            'auth': 'none (noauth, unauthenticated-context)',
            'workers': '1 gthread worker, 8 threads',
            'endpoint': self.server.endpoint,
        }

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            if self.database_server is not None:
                self.database_server.drop_all()
