"""Admission of submissions against ``MAIE_MAX_QUEUE_DEPTH``, atomic across requests and API processes.

Checking the depth and creating the task are far apart: the upload is received and probed in
between, so concurrent submissions that each saw room used to be accepted together past the limit.
Now a submission holds a queue slot in Redis from before its body is read (:func:`queue_slot_guard`,
one Lua call that counts unfinished tasks plus the slots others hold, and takes one only under the
limit) until its task is stored, in the same transaction that frees the slot. A batch holds one
more slot per recording once it knows how many it has (:meth:`QueueSlots.hold_total`). Whatever ends the
request (refused fields, a broken upload, an idempotent replay, a crash in a handler), the
:class:`AdmissionMiddleware` frees what is still held once it has been answered; slots of an API
process killed mid-upload expire after :data:`HOLD_S`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import structlog
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from maie.errors import QueueFullError, StoreUnavailableError

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import ASGIApp, Receive, Scope, Send

    from maie.api.services import Services

__all__ = ["HOLD_S", "AdmissionMiddleware", "QueueSlots", "queue_slot_guard", "slots_of"]

log = structlog.get_logger(__name__)

#: Seconds a slot is held at most: longer than any upload and probe should take. A submission
#: still being received after that no longer counts against the limit (its task still does).
HOLD_S = 900.0
_STATE = "maie_queue_slots"


class QueueSlots:
    """The queue slots one request holds, each for at most ``hold_s`` seconds (a live session's longer)."""

    def __init__(self, services: Services, *, hold_s: float = HOLD_S) -> None:
        self.services = services
        self.hold_s = hold_s
        self.ids: list[str] = []

    async def hold(self, count: int) -> None:
        """Hold ``count`` more slots.

        Raises:
            QueueFullError: 429 when unfinished tasks plus held slots leave no room for them.
            StoreUnavailableError: 503 when PostgreSQL or Redis cannot be reached.
        """
        if count <= 0:
            return
        server = self.services.settings.server
        ids = [str(uuid.uuid4()) for _ in range(count)]
        used = await self.services.store.hold_slots(ids, limit=server.max_queue_depth, hold_s=self.hold_s)
        if used is not None:
            more = f" and this submission adds {count}" if self.ids else ""
            raise QueueFullError(
                f"{used} tasks are waiting or being submitted{more} (limit MAIE_MAX_QUEUE_DEPTH="
                f"{server.max_queue_depth}); retry after {server.busy_retry_after_s} s",
                retry_after_s=server.busy_retry_after_s,
                extra={"queue_depth": used, "max_queue_depth": server.max_queue_depth},
            )
        self.ids += ids

    async def hold_total(self, total: int) -> None:
        """Hold more slots, up to ``total`` in all (a batch of ``total`` recordings).

        Raises:
            QueueFullError: 429 when the queue has no room for them.
        """
        await self.hold(total - len(self.ids))

    def stored(self) -> None:
        """The tasks were stored, in the transaction that freed these slots: nothing left to free."""
        self.ids = []

    async def free(self) -> None:
        """Give back every slot still held (those a stored task freed are ignored)."""
        ids, self.ids = self.ids, []
        try:
            await self.services.store.free_slots(ids)
        except StoreUnavailableError:
            log.warning("admission.slots_not_freed", slots=len(ids), expire_in_s=self.hold_s)


def slots_of(connection: ASGIConnection[Any, Any, Any, Any]) -> QueueSlots:
    """The slots :func:`queue_slot_guard` took for this request."""
    slots: QueueSlots = connection.state[_STATE]
    return slots


async def queue_slot_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Hold one queue slot before the body is read, or refuse the submission.

    Raises:
        StoreUnavailableError: 503 when PostgreSQL or Redis cannot be reached.
        QueueFullError: 429 when ``MAIE_MAX_QUEUE_DEPTH`` tasks are unfinished or being submitted.
    """
    services: Services = connection.app.state.services
    if down := await services.store.unreachable():
        raise StoreUnavailableError(f"{' and '.join(down)} cannot be reached; try again shortly")
    slots = QueueSlots(services)
    connection.state[_STATE] = slots  # before holding: the middleware frees whatever came of it
    await slots.hold(1)


class AdmissionMiddleware(ASGIMiddleware):
    """Frees the queue slots a submission still holds once it has been answered, however it ended."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Run the request, then free what it holds."""
        try:
            await next_app(scope, receive, send)
        finally:
            slots: QueueSlots | None = scope.get("state", {}).get(_STATE)
            if slots is not None and slots.ids:
                await slots.free()
