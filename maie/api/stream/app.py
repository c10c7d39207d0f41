"""``maie stream``: an app serving only live transcription (``/v1/stream``), with ``/health`` and ``/ready``.

It shares everything else with the API (settings, keys, rate limits, the intake that stores each
session as a task) through the same :class:`~maie.api.services.Services`; only the HTTP routes
of ``/v1`` are left out. The API relays its own ``/v1/stream`` here when ``MAIE_STREAM_URL`` points
to it, which ``maie up`` arranges.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio.to_thread
from litestar import Litestar
from litestar.di import NamedDependency, Provide

from maie.api.routes.health import HealthController
from maie.api.services import Services
from maie.api.stream.route import stream_socket
from maie.api.stream.service import StreamService
from maie.broker import build_broker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.datastructures import State

    from maie.config import Settings

__all__ = ["create_stream_app", "streaming_lifespan"]


def _provide_services(state: State) -> Services:
    services: Services = state.services
    return services


@asynccontextmanager
async def streaming_lifespan(services: Services, *, preload: tuple[str, ...] = ()) -> AsyncIterator[None]:
    """Give ``services`` a :class:`StreamService` (models in ``preload`` loaded now) for the app's life."""
    stream = StreamService(services)
    services.stream = stream
    try:
        await stream.preload(preload)
        yield
    finally:
        services.stream = None
        await stream.close()


def create_stream_app(settings: Settings, *, redis_url: str, database_url: str) -> Litestar:
    """The app of ``maie stream``, talking to Redis at ``redis_url`` and PostgreSQL at ``database_url``."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = Services(
            settings, redis_url=redis_url, database_url=database_url, broker=build_broker(settings, redis_url)
        )
        app.state.services = services
        await anyio.to_thread.run_sync(services.sandbox.start)
        try:
            async with streaming_lifespan(services, preload=settings.stream.preload_backends()):
                yield
        finally:
            await services.close()

    return Litestar(
        route_handlers=[stream_socket, HealthController],
        lifespan=[lifespan],
        dependencies={"services": Provide(_provide_services, sync_to_thread=False)},
        signature_namespace={"Services": Services, "NamedDependency": NamedDependency},
        logging_config=None,
        openapi_config=None,
        debug=settings.server.debug,
    )
