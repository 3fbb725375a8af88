"""``openstack`` (python-openstackclient), polling faster while it waits.

    python tests/integration/openstack_cli.py ARGS...

is ``openstack ARGS...`` except for how often a ``--wait`` looks: every
0.5 s instead of osc-lib's 5 s (``server create``, ``shelve``,
``unshelve``) and the SDK's 2 s (``server delete``). The commands, their
arguments, the requests and what they wait for are the same; a test that
runs a guide's commands does not spend most of its time asleep.
"""

import functools
import os
import sys

POLL_SECONDS = 0.5


def _polling(fn, name: str):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        kwargs.setdefault(name, POLL_SECONDS)
        return fn(*args, **kwargs)
    return wrapper


def main() -> int:
    # Run by path, this directory came first on sys.path: not for osc.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != here]

    from openstack.compute.v2 import _proxy
    from osc_lib import utils

    from openstackclient import shell

    utils.wait_for_status = _polling(utils.wait_for_status, 'sleep_time')
    _proxy.Proxy.wait_for_delete = _polling(_proxy.Proxy.wait_for_delete,
                                            'interval')
    return shell.main(sys.argv[1:])


if __name__ == '__main__':
    sys.exit(main())
