"""The Litestar application factory."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from litestar import Litestar, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from maie import __version__
from maie.api.batches import BatchesController
from maie.api.discovery import DiscoveryController
from maie.api.errors import exception_handlers
from maie.api.events import EventsController
from maie.api.exports import ExportsController
from maie.api.guards import API_KEY_HEADER, api_key_guard
from maie.api.health import HealthController
from maie.api.process import ProcessController
from maie.api.results import ResultsController
from maie.api.services import Services
from maie.api.status import StatusController
from maie.api.tasks import TasksController
from maie.broker import build_broker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.datastructures import State

    from maie.config import Settings

__all__ = ["create_app"]

#: Room for the form fields around the file in a multipart body.
FORM_OVERHEAD_BYTES = 64 * 1024


def _provide_services(state: State) -> Services:
    services: Services = state.services
    return services


def create_app(settings: Settings, *, redis_url: str) -> Litestar:
    """Build the API for ``settings``, talking to Redis at ``redis_url``.

    Connections are opened in the lifespan and closed on shutdown; nothing is read from globals.
    """

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = Services(settings, redis_url=redis_url, broker=build_broker(settings, redis_url))
        app.state.services = services
        try:
            yield
        finally:
            await services.close()

    max_body = int(settings.server.max_file_size_mb * 1024 * 1024) + FORM_OVERHEAD_BYTES
    # Batches take one archive or many files: their own body limit, on a router of their own.
    batches = Router(
        path="/batches",
        route_handlers=[BatchesController],
        request_max_body_size=int(settings.batch.max_upload_mb * 1024 * 1024) + FORM_OVERHEAD_BYTES,
    )
    v1 = Router(
        path="/v1",
        route_handlers=[
            ProcessController,
            StatusController,
            DiscoveryController,
            EventsController,
            TasksController,
            ResultsController,
            ExportsController,
            batches,
        ],
        guards=[api_key_guard],
        security=[{"ApiKey": []}],
        request_max_body_size=max_body,
    )
    return Litestar(
        route_handlers=[v1, HealthController],
        lifespan=[lifespan],
        dependencies={"services": Provide(_provide_services, sync_to_thread=False)},
        # Handlers import Services for type checking only; Litestar resolves their hints here.
        signature_namespace={"Services": Services},
        exception_handlers=exception_handlers,
        debug=settings.server.debug,
        # Logging is configured once by maie.logging for API and worker alike.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="MAIE",
            version=__version__,
            description="Modular Audio Intelligence Engine: recordings to transcripts and summaries.",
            components=Components(
                security_schemes={
                    "ApiKey": SecurityScheme(type="apiKey", name=API_KEY_HEADER, security_scheme_in="header"),
                }
            ),
        ),
    )
