"""Database access.

One :class:`Database` object per process wraps an engine built by oslo.db
(error translation, MySQL sql_mode, connection checks) and hands out short
transactions. State changes that must not race are single conditional
UPDATEs checked by row count: the task_state compare-and-swap of
:meth:`Database.instance_update` and the capacity claim of
:meth:`Database.claim`. They behave the same on SQLite, PostgreSQL and MariaDB.

The queries live in one module per area (``flavors``, ``hosts`` with the
claims, ``aggregates``, ``instances``, ``requests``), mixed into
:class:`Database`.
"""

import contextlib
import inspect
from collections.abc import Iterator

import sqlalchemy as sa
from oslo_db import api as oslo_db_api
from oslo_db.sqlalchemy import engines
from oslo_db.sqlalchemy import exc_filters
from sqlalchemy import orm

from lifecycle.db import aggregates
from lifecycle.db import flavors
from lifecycle.db import hosts
from lifecycle.db import instances
from lifecycle.db import requests


READONLY = 'lifecycle_readonly'
# The fault value the query methods take (``fault=``) and record.
Fault = instances.Fault
# The request value they take (``request=``) and record.
Request = requests.Request
stored_context = requests.stored_context


def _create_sqlite_engine(url: str) -> sa.Engine:
    """A SQLite engine whose transactions take the write lock at BEGIN.

    pysqlite's deferred transactions upgrade to a write lock on the first
    write, and two threads upgrading at once get SQLITE_BUSY at once instead
    of waiting on the busy timeout; BEGIN IMMEDIATE makes them queue. oslo.db's
    SQLite engine emits its own plain BEGIN, so this engine is SQLAlchemy's,
    with oslo.db's exception translation added.
    """
    engine = sa.create_engine(url, connect_args={'timeout': 30},
                              **_sqlite_pool_options())

    @sa.event.listens_for(engine, 'connect')
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        dbapi_connection.execute('PRAGMA journal_mode=WAL')
        # WAL with NORMAL: a commit survives the process being killed
        # (what the resumable flows need); only an OS crash may lose the
        # last commits, never consistency. FULL's fsync per commit made the
        # flows' progress writes the bottleneck of the all-in-one.
        dbapi_connection.execute('PRAGMA synchronous=NORMAL')
        dbapi_connection.execute('PRAGMA foreign_keys=ON')

    @sa.event.listens_for(engine, 'begin')
    def _begin(connection):
        # Readers do not take the write lock: in WAL mode they read a
        # snapshot while a writer commits, instead of queueing behind it.
        if connection.get_execution_options().get(READONLY):
            connection.exec_driver_sql('BEGIN')
        else:
            connection.exec_driver_sql('BEGIN IMMEDIATE')

    exc_filters.register_engine(engine)
    return engine


def _pool_options() -> dict:
    """oslo.db's ``[database]`` engine options (pool size, overflow,
    timeouts, recycling, SQL mode, debugging), as oslo.db's own enginefacade
    passes them; values not set keep oslo.db's defaults."""
    from lifecycle.conf import CONF  # the db package is also used bare

    db = CONF.database
    names = {'max_pool_size': 'max_pool_size',
             'max_overflow': 'max_overflow',
             'pool_timeout': 'pool_timeout',
             'connection_recycle_time': 'connection_recycle_time',
             'mysql_sql_mode': 'mysql_sql_mode',
             'mysql_wsrep_sync_wait': 'mysql_wsrep_sync_wait',
             'connection_debug': 'connection_debug',
             'connection_trace': 'connection_trace',
             'max_retries': 'max_retries',
             'retry_interval': 'retry_interval',
             'connection_parameters': 'connection_parameters'}
    options = {}
    for kwarg, opt in names.items():
        value = getattr(db, opt, None)
        if value is not None:
            options[kwarg] = value
    return options


def _sqlite_pool_options() -> dict:
    """``[database]`` pool size and overflow for SQLite too (SQLAlchemy's
    own default is 5 + 10): the all-in-one runs every host's workers, the
    conductor and the API in one process on one engine, and with 15
    connections a burst of a few hundred operations waited out the 30 s
    pool timeout and failed. Writers still queue on SQLite's write lock
    (``BEGIN IMMEDIATE``, 30 s busy timeout); a connection is a file
    handle."""
    options = _pool_options()
    return {'pool_size': options.get('max_pool_size', 5),
            'max_overflow': options.get('max_overflow', 50),
            'pool_timeout': options.get('pool_timeout', 30)}


class Database(flavors.FlavorsMixin, hosts.HostsMixin,
               aggregates.AggregatesMixin, instances.InstancesMixin,
               requests.RequestsMixin):
    """Transactions and queries over one database URL."""

    def __init__(self, url: str, **engine_kwargs) -> None:
        self.url = url
        if url.startswith('sqlite'):
            self.engine = _create_sqlite_engine(url)
        else:
            kwargs = _pool_options()
            kwargs.update(engine_kwargs)
            self.engine = engines.create_engine(url, **kwargs)
        self._sessionmaker = orm.sessionmaker(bind=self.engine,
                                              expire_on_commit=False)
        self._reader_sessionmaker = orm.sessionmaker(
            bind=self.engine.execution_options(**{READONLY: True}),
            expire_on_commit=False)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def session(self, readonly: bool = False) -> Iterator[orm.Session]:
        """One transaction; ``readonly`` for queries that write nothing
        (on SQLite they then do not wait for the write lock)."""
        maker = self._reader_sessionmaker if readonly else self._sessionmaker
        with maker() as session, session.begin():
            yield session


def _retry_on_disconnect(cls: type) -> type:
    """Every query method of ``cls`` retried when the database connection
    drops (a database restart, a failover, a killed session) or a deadlock
    makes the transaction roll back: each method is one transaction, so
    running it again is safe; pool_pre_ping then hands out a live
    connection. An update whose COMMIT was sent when the connection died is
    the one ambiguous case: its retry finds the new state, and a
    compare-and-swap then refuses (a 409 or a fault), never applies twice.
    """
    retry = oslo_db_api.wrap_db_retry(max_retries=5, retry_interval=0.2,
                                      inc_retry_interval=True,
                                      max_retry_interval=2,
                                      retry_on_disconnect=True,
                                      retry_on_deadlock=True)
    for name in dir(cls):
        raw = inspect.getattr_static(cls, name)
        if (name.startswith('_') or name in _NOT_RETRIED or
                not inspect.isfunction(raw)):
            continue  # private, static/class methods, attributes
        setattr(cls, name, retry(raw))
    return cls


_NOT_RETRIED = ('session', 'dispose')
Database = _retry_on_disconnect(Database)
