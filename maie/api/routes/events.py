"""GET /v1/status/{task_id}/events: server-sent events of a task's status until it finishes.

Each event is ``event: status`` whose ``data`` is the same JSON as GET /v1/status and whose ``id``
is that answer's ``ETag``; one is sent at once and then whenever the task changes. The stream
ends after the event that shows the task COMPLETE or FAILED. A client that reconnects with
``Last-Event-ID`` is not sent the state it already has. While nothing changes, a comment line
is sent every :data:`KEEPALIVE_S` seconds so proxies keep the connection open.

The API looks at the task every ``MAIE_EVENTS_POLL_MS`` (one small Redis read), so a stream costs
the same as a client polling that often, without the HTTP round trips.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from litestar import Controller, Request, get
from litestar.response import ServerSentEvent, ServerSentEventMessage

from maie.api.guards import tenant_of
from maie.api.queries import load_task, status_body, status_etag
from maie.errors import NotFoundError, StoreUnavailableError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.di import NamedDependency
    from litestar.params import FromPath

    from maie.api.services import Services

__all__ = ["KEEPALIVE_S", "EventsController", "status_events"]

log = structlog.get_logger(__name__)

#: Seconds between keep-alive comments while the task does not change.
KEEPALIVE_S = 15.0
#: Milliseconds a client should wait before reconnecting (the SSE ``retry`` field).
RECONNECT_MS = 2000


async def status_events(
    services: Services, task_id: str, tenant: str, last_event_id: str | None
) -> AsyncIterator[ServerSentEventMessage]:
    """Events of one task until it finishes (or disappears)."""
    poll_s = services.settings.server.events_poll_ms / 1000
    last_sent = time.monotonic()
    seen = last_event_id
    while True:
        try:
            record = await load_task(services, task_id, tenant)
            etag = status_etag(record)
            body = await status_body(services, record, etag) if etag != seen else b""
        except NotFoundError:
            yield ServerSentEventMessage(event="gone", data=f'{{"task_id":"{task_id}"}}')
            return
        except StoreUnavailableError:
            # Redis is briefly away: keep the stream, look again on the next tick.
            log.warning("events.store_unavailable")
        else:
            if etag != seen:
                seen = etag
                last_sent = time.monotonic()
                yield ServerSentEventMessage(event="status", id=etag, data=body.decode())
            if record.status.terminal:
                return
        if time.monotonic() - last_sent >= KEEPALIVE_S:
            last_sent = time.monotonic()
            yield ServerSentEventMessage(comment="keep-alive")
        await anyio.sleep(poll_s)


class EventsController(Controller):
    """Streaming status."""

    path = "/status"
    tags = ("tasks",)

    @get(
        "/{task_id:str}/events",
        summary="Stream a task's status (server-sent events) until it finishes",
        media_type="text/event-stream",
    )
    async def events(
        self, request: Request[Any, Any, Any], task_id: FromPath[str], services: NamedDependency[Services]
    ) -> ServerSentEvent:
        """Send ``status`` events whenever the task changes; the stream ends when it finishes."""
        tenant = tenant_of(request)
        await load_task(services, task_id, tenant)  # an unknown task is a plain 404, not a stream
        return ServerSentEvent(
            status_events(services, task_id, tenant, request.headers.get("Last-Event-ID")),
            retry_duration=RECONNECT_MS,
        )
