"""Test-only fault injection at task boundaries.

``LIFECYCLE_FAULT_BOUNDARY=<flow>:<task>:<before|after>`` in a service's
environment makes it kill itself with SIGKILL at that boundary: ``before``
just before the task runs (every earlier task's result is durable),
``after`` just after it ran and before its result is recorded (so a resumed
flow runs it again). Unset -- always, outside the fault-injection tests --
it does nothing. An environment variable, not a config option: no operator
should ever be able to switch it on by configuration.
"""

import os
import signal

ENV = 'LIFECYCLE_FAULT_BOUNDARY'
BEFORE = 'before'
AFTER = 'after'


def boundary(flow_name: str, task_name: str, when: str) -> None:
    target = os.environ.get(ENV)
    if target and target == '%s:%s:%s' % (flow_name, task_name, when):
        # The marker lets the test tell this death from any other.
        print('lifecycle fault injection: SIGKILL at %s' % target,
              flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
