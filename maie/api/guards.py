"""Guards: API-key authentication with tenants, rate limits, and admission control before an upload is read.

Litestar runs guards before it parses the request body, so a refused upload costs no bandwidth.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from maie.errors import QueueFullError, StoreUnavailableError, UnauthorizedError

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

    from maie.api.services import Services

__all__ = [
    "API_KEY_HEADER",
    "admission_guard",
    "api_key_guard",
    "rate_limit_guard",
    "submission_rate_limit_guard",
    "tenant_of",
]

#: Header that carries the API key.
API_KEY_HEADER = "X-API-Key"
_TENANT_STATE = "maie_tenant"


def _services(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    services: Services = connection.app.state.services
    return services


async def api_key_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Admit requests with a known ``X-API-Key`` and remember its tenant.

    Every configured key is compared with :func:`hmac.compare_digest`, whatever matches first, so
    the time taken does not tell which key prefix was right. The guard is a coroutine although it
    awaits nothing: Litestar runs a plain function guard in a worker thread, a thread hop on every
    request that cost a polled ``GET /v1/status`` more than the rest of its work.

    Raises:
        UnauthorizedError: if the key is missing or unknown.
    """
    given = connection.headers.get(API_KEY_HEADER)
    if not given:
        raise UnauthorizedError(f"missing {API_KEY_HEADER} header")
    presented = given.encode()
    tenant = None
    for key, key_tenant in _services(connection).api_keys:
        if hmac.compare_digest(presented, key) and tenant is None:
            tenant = key_tenant
    if tenant is None:
        raise UnauthorizedError(f"invalid {API_KEY_HEADER}")
    # The scope's own dict: ``connection.state`` builds a State around it on every access.
    connection.scope["state"][_TENANT_STATE] = tenant


def tenant_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Tenant of the authenticated key (set by :func:`api_key_guard`)."""
    tenant: str = connection.scope["state"][_TENANT_STATE]
    return tenant


async def admission_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Refuse a submission before its body is read when Redis is down or the queue is full.

    Raises:
        StoreUnavailableError: 503 when Redis cannot be reached.
        QueueFullError: 429 when ``MAIE_MAX_QUEUE_DEPTH`` tasks are unfinished.
    """
    services = _services(connection)
    server = services.settings.server
    if not await services.store.ping():
        raise StoreUnavailableError("the task store (Redis) cannot be reached; try again shortly")
    depth = await services.store.queue_depth()
    if depth >= server.max_queue_depth:
        raise QueueFullError(
            f"{depth} tasks are waiting (limit MAIE_MAX_QUEUE_DEPTH={server.max_queue_depth}); "
            f"retry after {server.busy_retry_after_s} s",
            retry_after_s=server.busy_retry_after_s,
        )


async def rate_limit_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Count the request against its key's ``MAIE_RATE_LIMIT``; runs after the key is checked.

    Raises:
        RateLimitedError: 429 with ``Retry-After``.
    """
    await _services(connection).rate_limiter.hit(connection.headers.get(API_KEY_HEADER, ""), "requests")


async def submission_rate_limit_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Count a submission against its key's ``MAIE_RATE_LIMIT_SUBMIT``, before the body is read.

    Raises:
        RateLimitedError: 429 with ``Retry-After``.
    """
    await _services(connection).rate_limiter.hit(connection.headers.get(API_KEY_HEADER, ""), "submissions")
