"""What the Glance and Cinder clients share (Nova's ``get_ksa_adapter`` and
its retry rules): the keystoneauth1 session, auth and adapter of a
configuration group, the endpoint they find, and the retry of calls that
failed on the connection or with a 5xx."""

import time
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_log import log as logging

from lifecycle import exception

LOG = logging.getLogger(__name__)

#: The longest wait between two tries of a call.
MAX_RETRY_DELAY = 30
#: Server failures worth another try.
RETRIABLE_STATUS = frozenset({500, 502, 503, 504})

T = TypeVar('T')


class Transport(NamedTuple):
    session: object
    auth: object
    adapter: object


def load_transport(conf: cfg.ConfigOpts, group: str) -> Transport:
    """The session, auth plugin and adapter of ``[group]``'s keystoneauth1
    options (lifecycle/conf/ksa.py)."""
    auth = ks_loading.load_auth_from_conf_options(conf, group)
    session = ks_loading.load_session_from_conf_options(conf, group,
                                                        auth=auth)
    adapter = ks_loading.load_adapter_from_conf_options(
        conf, group, session=session, auth=auth)
    return Transport(session, auth, adapter)


def find_endpoint(transport: Transport,
                  error: Callable[[str], Exception]) -> str | None:
    """``endpoint_override`` or the catalog's endpoint of the adapter's
    service type, interfaces and region (None when there is none);
    ``error(reason)`` is raised when the catalog cannot be read."""
    try:
        return transport.adapter.get_endpoint()
    except ks_exc.ClientException as e:
        raise error(exception.describe(e)) from e


def no_endpoint(group: str, service_type: str, what: str) -> str:
    """Why there is no endpoint, and what to configure."""
    return ('no %s endpoint: set [%s] endpoint_override, or the auth options '
            'and a catalog with a "%s" service' % (what, group, service_type))


def is_transient(error: BaseException,
                 connection_errors: tuple[type, ...] = ()) -> bool:
    """A failure of the connection (keystoneauth1's, the OS's, or one of
    the client's ``connection_errors``) or of the server (5xx)."""
    if isinstance(error, (ks_exc.ConnectionError, ConnectionError) +
                  connection_errors):
        return True
    return getattr(error, 'code', None) in RETRIABLE_STATUS


def call_with_retries(service: str, what: str, attempts: int,
                      func: Callable[[], T],
                      retriable: Callable[[BaseException], bool]) -> T:
    """``func()``, tried up to ``attempts`` times while it fails with a
    ``retriable`` error, 1, 2, 4, ... (at most :data:`MAX_RETRY_DELAY`)
    seconds apart; the last failure, or one not retriable, is raised as it
    is."""
    for attempt in range(1, attempts + 1):
        try:
            return func()
        except Exception as e:
            if not retriable(e) or attempt == attempts:
                raise
            delay = min(2 ** (attempt - 1), MAX_RETRY_DELAY)
            LOG.warning('%(service)s request %(what)s failed (attempt '
                        '%(n)d of %(max)d), retrying in %(delay)d s: '
                        '%(err)s',
                        {'service': service, 'what': what, 'n': attempt,
                         'max': attempts, 'delay': delay,
                         'err': exception.describe(e)})
            time.sleep(delay)
    raise AssertionError('attempts must be at least 1')
