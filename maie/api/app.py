"""The Litestar application factory."""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from litestar import Litestar, Request, Router
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import FromPath, JSONBody

from maie import __version__
from maie.api.errors import exception_handlers
from maie.api.guards import API_KEY_HEADER, api_key_guard, rate_limit_guard
from maie.api.openai import document_openai_errors, openai_router
from maie.api.openapi import document_v1_errors
from maie.api.rate_limit import is_off
from maie.api.request_id import RequestIdMiddleware, add_request_id_header
from maie.api.routes.batches import BatchesController
from maie.api.routes.discovery import DiscoveryController
from maie.api.routes.events import EventsController
from maie.api.routes.exports import ExportsController
from maie.api.routes.health import HealthController
from maie.api.routes.metrics import MetricsController, http_metrics_config
from maie.api.routes.process import ProcessController
from maie.api.routes.results import ResultsController
from maie.api.routes.search import SearchController
from maie.api.routes.speakers import SpeakersController
from maie.api.routes.status import StatusController
from maie.api.routes.summaries import SummariesController
from maie.api.routes.tasks import TasksController
from maie.api.services import Services
from maie.api.stream.app import streaming_lifespan
from maie.api.stream.route import stream_socket
from maie.api.upkeep import keep_up
from maie.api.web_routes import root_handlers, template_config, v1_handlers
from maie.broker import build_broker
from maie.errors import StoreUnavailableError
from maie.store import TaskFilter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from maie.config import Settings

__all__ = ["create_app"]

#: Room for the form fields around the file in a multipart body.
FORM_OVERHEAD_BYTES = 64 * 1024


def _provide_services(request: Request[Any, Any, Any]) -> Services:
    # Not ``state: State``: Litestar would build a new State (and its lock) per request from it.
    services: Services = request.app.state.services
    return services


def create_app(settings: Settings, *, redis_url: str, database_url: str) -> Litestar:
    """Build the API for ``settings``, talking to Redis at ``redis_url`` and PostgreSQL at ``database_url``.

    Connections are opened in the lifespan and closed on shutdown; nothing is read from globals.
    """

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = Services(
            settings, redis_url=redis_url, database_url=database_url, broker=build_broker(settings, redis_url)
        )
        app.state.services = services
        await anyio.to_thread.run_sync(services.sandbox.start)
        try:
            async with anyio.create_task_group() as upkeep:
                upkeep.start_soon(keep_up, services)
                try:
                    if settings.stream.url:  # sessions run in `maie stream`; /v1/stream relays to it
                        yield
                    else:  # this process runs them itself, loading models on their first session
                        async with streaming_lifespan(services):
                            yield
                finally:
                    upkeep.cancel_scope.cancel()
            with contextlib.suppress(StoreUnavailableError):
                await services.intake_owner.retire()
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
            SearchController,
            ResultsController,
            SummariesController,
            SpeakersController,
            ExportsController,
            batches,
            *v1_handlers(),
        ],
        # With MAIE_RATE_LIMIT=off there is nothing to count: no guard, rather than one that
        # returns at once on every request.
        guards=[api_key_guard, *([] if is_off(settings.rate_limit.rate_limit) else [rate_limit_guard])],
        security=[{"ApiKey": []}, {"Bearer": []}],
        request_max_body_size=max_body,
    )
    app = Litestar(
        # The web app (pages and their static files) at /, for people; it uses /v1 like any client.
        route_handlers=[
            v1,
            openai_router(max_body_bytes=max_body),
            stream_socket,
            HealthController,
            MetricsController,
            *root_handlers(),
        ],
        template_config=template_config(),
        # Outermost first: the request id wraps everything, so even a failed request has one.
        middleware=[RequestIdMiddleware(), http_metrics_config().middleware],
        before_send=[add_request_id_header],
        lifespan=[lifespan],
        dependencies={"services": Provide(_provide_services, sync_to_thread=False)},
        # Handlers import Services for type checking only; Litestar resolves their hints here.
        signature_namespace={
            "Services": Services,
            "TaskFilter": TaskFilter,
            "NamedDependency": NamedDependency,
            "FromPath": FromPath,
            "JSONBody": JSONBody,
        },
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
                    "Bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="The API key as `Authorization: Bearer <key>` (what OpenAI's SDKs send)",
                    ),
                }
            ),
        ),
    )
    document_v1_errors(app)
    document_openai_errors(app)
    return app
