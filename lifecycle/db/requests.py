"""Accepted requests (``models.AcceptedRequest``): written with the
task_state they set, removed with the change that moves the task on.

The two halves are in :meth:`InstancesMixin.instance_update` (and the
claim release and soft delete, which end tasks too), so no caller can end a
task and forget its request: :func:`replace` when a request is given,
:func:`settle` otherwise.
"""

import dataclasses
import json

import sqlalchemy as sa
from sqlalchemy import orm

from lifecycle.db import models


@dataclasses.dataclass(frozen=True)
class Request:
    """A request to record with the task_state it sets: the RPC message
    (``service`` 'compute' or 'conductor', the compute ``host``,
    ``method`` and its keyword ``args`` besides the instance) and the
    request's context, without tokens."""

    task_state: str
    service: str
    method: str
    host: str | None = None
    args: dict = dataclasses.field(default_factory=dict)
    context: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, task_state: str, service: str, method: str, context,
           host: str | None = None, **args) -> 'Request':
        """With ``context`` (a RequestContext or None) stored as its dict
        (:func:`stored_context`)."""
        return cls(task_state, service, method, host, args,
                   stored_context(context))


def stored_context(context) -> dict:
    """A request context as the database keeps it: its dict without the
    tokens (never written to the database; RPC between the services does
    not need them)."""
    return {k: v for k, v in (context.to_dict() if context else {}).items()
            if 'token' not in k}


def replace(session: orm.Session, instance_uuid: str,
            request: Request) -> None:
    """Record ``request`` as the instance's, instead of the one before."""
    table = models.AcceptedRequest.__table__
    # Core statements: the ORM's bulk delete and unit of work cost several
    # times the SQL, twice per state change.
    session.execute(sa.delete(table).where(
        table.c.instance_uuid == instance_uuid))
    session.execute(table.insert().values(
        instance_uuid=instance_uuid, task_state=request.task_state,
        service=request.service, host=request.host, method=request.method,
        args=json.dumps(request.args), context=json.dumps(request.context)))


def settle(session: orm.Session, instance_uuid: str,
           task_state: str | None) -> None:
    """The task is now ``task_state``: a request that set another one is
    done (or handed over)."""
    table = models.AcceptedRequest.__table__
    query = sa.delete(table).where(table.c.instance_uuid == instance_uuid)
    if task_state is not None:
        query = query.where(table.c.task_state != task_state)
    session.execute(query)


class RequestsMixin:
    """Part of :class:`lifecycle.db.api.Database`."""

    def accepted_requests(self, *, service: str | None = None,
                          host: str | None = None,
                          dispatched_before=None
                          ) -> list[models.AcceptedRequest]:
        """Accepted requests, oldest first; of one service (and compute
        host), or last sent before ``dispatched_before``."""
        row = models.AcceptedRequest
        query = sa.select(row).order_by(row.accepted_at)
        if service is not None:
            query = query.where(row.service == service)
        if host is not None:
            query = query.where(row.host == host)
        if dispatched_before is not None:
            query = query.where(row.dispatched_at < dispatched_before)
        with self.session(readonly=True) as session:
            return list(session.scalars(query))

    def accepted_request_dispatched(self, instance_uuid: str,
                                    task_state: str) -> bool:
        """Note that the request was sent again; False when its task has
        moved on meanwhile (then it must not be sent)."""
        row = models.AcceptedRequest
        with self.session() as session:
            return session.execute(
                sa.update(row).where(row.instance_uuid == instance_uuid,
                                     row.task_state == task_state)
                .values(dispatched_at=models.utcnow(),
                        dispatches=row.dispatches + 1)).rowcount == 1
