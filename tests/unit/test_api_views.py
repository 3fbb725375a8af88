"""The server view's fault rules."""

import datetime
import types

from lifecycle import names
from lifecycle.api import views

SHELVED_AT = datetime.datetime(2026, 12, 2, 12, 3, 20, 207000)


def _server(fault_at: datetime.datetime):
    fault = types.SimpleNamespace(code=500, message='No valid host was found.',
                                  details='NoValidHost', created_at=fault_at)
    return types.SimpleNamespace(
        fault=fault,
        system_metadata={names.SHELVED_AT: SHELVED_AT.isoformat()})


def _request(admin=True):
    return types.SimpleNamespace(
        context=types.SimpleNamespace(is_admin=admin))


def test_offloaded_server_shows_a_fault_stored_in_whole_seconds():
    """MariaDB's DATETIME truncates: a fault recorded 0.6 s after the shelve,
    in the same second, reads back as earlier than the shelve."""
    truncated = SHELVED_AT.replace(microsecond=0)
    doc = views._fault(_request(), _server(truncated), 'SHELVED_OFFLOADED')
    assert doc is not None
    assert doc['message'] == 'No valid host was found.'


def test_offloaded_server_hides_a_fault_from_before_the_shelve():
    earlier = SHELVED_AT - datetime.timedelta(seconds=1)
    assert views._fault(_request(), _server(earlier),
                        'SHELVED_OFFLOADED') is None


def test_active_server_never_shows_a_fault():
    later = SHELVED_AT + datetime.timedelta(seconds=5)
    assert views._fault(_request(), _server(later), 'ACTIVE') is None
