"""The RabbitMQ of the tests (``LIFECYCLE_TEST_RABBIT_URL``) and whether it
answers."""

import os
import urllib.parse

from tests.conftest import tcp_reachable

RABBIT_URL = os.environ.get('LIFECYCLE_TEST_RABBIT_URL',
                            'rabbit://guest:guest@127.0.0.1:5672/')


def rabbit_usable(url: str) -> bool:
    """True when a real AMQP connection to ``url`` opens."""
    import kombu
    parsed = urllib.parse.urlsplit(url)
    if not tcp_reachable(parsed.hostname, parsed.port or 5672):
        return False
    try:
        with kombu.Connection(url.replace('rabbit://', 'amqp://', 1),
                              connect_timeout=5) as conn:
            conn.connect()
        return True
    except Exception:  # any failure means "not usable"
        return False
