"""GET /health and /ready: public, for load balancers and people.

Both answer HEAD too (status only, no body): many load balancers and uptime checkers probe with it.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from litestar import Controller, Response, get, head
from litestar.openapi import ResponseSpec

from maie import __version__
from maie.errors import StoreUnavailableError
from maie.schemas import HealthResponse
from maie.store import REDIS_DOWN, WORKER_HEARTBEAT_WINDOW_S, WORKERS_KEY

if TYPE_CHECKING:
    from litestar.di import NamedDependency

    from maie.api.services import Services
    from maie.store import AsyncTaskStore

__all__ = ["HealthController", "redis_health"]


async def redis_health(store: AsyncTaskStore) -> tuple[bool, bool]:
    """Whether Redis answers, and whether a worker sent a heartbeat lately: one round trip.

    The ping and the heartbeat count go in one pipeline: load balancers probe /health often, and
    every round trip costs the API a send, a wake-up and a parse.
    """
    async with store.client.pipeline(transaction=False) as pipe:
        pipe.ping()
        pipe.zcount(WORKERS_KEY, time.time() - WORKER_HEARTBEAT_WINDOW_S, "+inf")
        try:
            pong, workers = await pipe.execute()
        except REDIS_DOWN:
            return False, False
    return bool(pong), int(workers) > 0


async def _database_health(store: AsyncTaskStore) -> tuple[bool, int | None]:
    # The ping first: it gives up sooner than a query waits for a pooled connection.
    if not await store.ping_database():
        return False, None
    try:
        return True, await store.queue_depth()
    except StoreUnavailableError:
        return False, None


class HealthController(Controller):
    """Health and readiness."""

    tags = ("health",)

    @get("/health", summary="Service health")
    async def health(self, services: NamedDependency[Services]) -> HealthResponse:
        """Report Redis, PostgreSQL, the queue depth and whether a worker sent a heartbeat lately."""
        (redis_connected, worker_active), (database_connected, depth) = await asyncio.gather(
            redis_health(services.store), _database_health(services.store)
        )
        ok = redis_connected and database_connected and worker_active
        return HealthResponse(
            status="ok" if ok else "degraded",
            version=__version__,
            redis_connected=redis_connected,
            database_connected=database_connected,
            queue_depth=depth,
            worker_active=worker_active,
        )

    @head("/health", summary="Service health, status only", status_code=200)
    async def health_head(self) -> None:
        """Answer 200 with no body, as GET /health does whatever it reports (it is always answered)."""

    @head("/ready", summary="Readiness, status only: 200 or 503", status_code=200)
    async def ready_head(self, services: NamedDependency[Services]) -> Response[None]:
        """The status of GET /ready, with no body."""
        return Response(None, status_code=200 if await services.store.ping() else 503)

    @get(
        "/ready",
        summary="Readiness: 200 when submissions can be accepted, else 503",
        responses={
            503: ResponseSpec(
                data_container=dict[str, str], description="Redis or PostgreSQL cannot be reached"
            )
        },
    )
    async def ready(self, services: NamedDependency[Services]) -> Response[dict[str, str]]:
        """Answer 200 when Redis and PostgreSQL answer, 503 (with the reason) otherwise."""
        down = await services.store.unreachable()
        if not down:
            return Response({"status": "ready"}, status_code=200)
        headers = {"Retry-After": str(services.settings.server.busy_retry_after_s)}
        return Response(
            {"status": "not ready", "reason": f"{' and '.join(down)} cannot be reached"},
            status_code=503,
            headers=headers,
        )
