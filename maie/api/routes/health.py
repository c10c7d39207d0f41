"""GET /health and /ready: public, for load balancers and people.

Both answer HEAD too (status only, no body): many load balancers and uptime checkers probe with it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from litestar import Controller, Response, get, head
from litestar.openapi import ResponseSpec

from maie import __version__
from maie.errors import StoreUnavailableError
from maie.schemas import HealthResponse

if TYPE_CHECKING:
    from litestar.di import NamedDependency

    from maie.api.services import Services

__all__ = ["HealthController"]


class HealthController(Controller):
    """Health and readiness."""

    tags = ("health",)

    @get("/health", summary="Service health")
    async def health(self, services: NamedDependency[Services]) -> HealthResponse:
        """Report Redis, PostgreSQL, the queue depth and whether a worker sent a heartbeat lately."""
        store = services.store
        redis_connected, database_connected = await asyncio.gather(store.ping_redis(), store.ping_database())
        depth = None
        worker_active = False
        if database_connected:
            try:
                depth = await store.queue_depth()
            except StoreUnavailableError:
                database_connected = False
        if redis_connected:
            try:
                worker_active = await store.workers_active()
            except StoreUnavailableError:
                redis_connected = False
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
