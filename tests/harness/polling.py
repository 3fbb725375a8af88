"""Waiting for a condition in tests: one helper for every poll."""

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float, what: str = '',
               *, interval: float = 0.1,
               check: Callable[[], None] | None = None) -> Any:
    """``predicate()``'s first true value, polled every ``interval``
    seconds; an AssertionError naming ``what`` after ``timeout``.
    ``check()``, called before each poll, raises when the thing waited
    on can no longer get there (a service process that died, say)."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, 'timed out after %.0f s: %s' % (
            timeout, what)
        time.sleep(interval)
