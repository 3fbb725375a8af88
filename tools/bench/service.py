"""Start a lifecycle service (``api``, ``conductor``, ``compute``) with
``[database] max_pool_size``, ``max_overflow`` and ``pool_timeout`` applied
to its engine.

    python -m tools.bench.service compute --config-file F ...

The services register these oslo.db options but ``deploy.open_database``
builds ``Database(url)`` without engine arguments, so every process may
open SQLAlchemy's default 5 + 10 connections: with 20 compute hosts that is
more than PostgreSQL's default ``max_connections = 100`` and the
multi-process mass unshelve fails with "too many clients". This wrapper does
what the proposed fix does (pass the options to
``oslo_db.sqlalchemy.engines.create_engine``) and changes nothing else.
"""

import importlib
import sys

from lifecycle.conf import CONF
from lifecycle.db import api as db_api

_POOL_OPTIONS = ('max_pool_size', 'max_overflow', 'pool_timeout')


def honour_pool_options() -> None:
    original = db_api.Database.__init__

    def __init__(self, url, **kwargs):
        if not url.startswith('sqlite'):
            for name in _POOL_OPTIONS:
                value = getattr(CONF.database, name, None)
                if value is not None:
                    kwargs.setdefault(name, value)
        original(self, url, **kwargs)

    db_api.Database.__init__ = __init__


def main(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    if command not in ('api', 'conductor', 'compute'):
        print('usage: python -m tools.bench.service api|conductor|compute '
              '--config-file F ...', file=sys.stderr)
        return 2
    honour_pool_options()
    module = importlib.import_module('lifecycle.cmd.%s' % command)
    return module.main(rest)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
