"""A service command started ahead of need:
``python -m tests.integration.standby COMMAND PRELOG`` imports what
``lifecycle.cmd.COMMAND`` imports (oslo.*, SQLAlchemy, libvirt, ...:
seconds of a service's start), then waits for one JSON line on stdin::

    {"args": [...], "env": {...}, "log": "/path/to/log"}

and then is that service: its stdout and stderr go to ``log`` (appended,
after what the imports printed to ``PRELOG``, e.g. deprecation warnings),
its stdin becomes /dev/null, ``env`` is its environment, and
``lifecycle.cmd.COMMAND`` runs as ``__main__`` with ``args``, exactly as
``python -m lifecycle.cmd.COMMAND ARGS`` (the same process: its exit status,
SIGKILL included, is the one the caller's Popen sees). End of input without
a line: exits 0 without having started anything.

Only the imports are done ahead: the configuration is read, the logging set
up, the database, the message bus and libvirt are reached by the service
itself once it is told to start, as in a cold start. See
:class:`tests.harness.deployment.Standbys`.
"""

import ast
import importlib
import importlib.util
import json
import os
import runpy
import sys

PACKAGE = 'lifecycle.cmd'


def imports_of(module: str) -> list[str]:
    """The modules ``module``'s top level imports, in order (not the module
    itself: it runs as ``__main__``, imported once, as with ``-m``)."""
    spec = importlib.util.find_spec(module)
    with open(spec.origin) as f:
        tree = ast.parse(f.read(), spec.origin)
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append(node.module)
            # ``from lifecycle import deploy``: deploy may be a module.
            found += ['%s.%s' % (node.module, alias.name)
                      for alias in node.names]
    return found


def preload(module: str) -> None:
    importlib.import_module(PACKAGE)
    for name in imports_of(module):
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a name imported from a module, not a module


def main() -> int:
    module = '%s.%s' % (PACKAGE, sys.argv[1])
    preload(module)
    line = sys.stdin.readline()
    if not line:
        return 0
    order = json.loads(line)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    log = os.open(order['log'], os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                  0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(sys.argv[2], 'rb') as f:
        os.write(log, f.read())
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ.clear()
    os.environ.update(order['env'])
    sys.argv = [module] + order['args']
    runpy.run_module(module, run_name='__main__', alter_sys=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
