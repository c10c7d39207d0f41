"""Guards: API-key authentication with tenants, rate limits, and admission control before an upload is read.

Litestar runs guards before it parses the request body, so a refused upload costs no bandwidth.
A key is presented as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (what OpenAI's SDKs
send), on every route; the live-transcription socket also takes it in its first message.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from maie.errors import QueueFullError, StoreUnavailableError, UnauthorizedError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

    from maie.api.services import Services

__all__ = [
    "API_KEY_HEADER",
    "AUTHORIZATION_HEADER",
    "admission_guard",
    "api_key_guard",
    "api_key_of",
    "presented_key",
    "rate_limit_guard",
    "submission_rate_limit_guard",
    "tenant_for_key",
    "tenant_of",
]

#: Header that carries the API key.
API_KEY_HEADER = "X-API-Key"
#: The other header that may carry it, as ``Bearer <key>``.
AUTHORIZATION_HEADER = "Authorization"
_BEARER = "bearer "
_TENANT_STATE = "maie_tenant"
_KEY_STATE = "maie_api_key"


def _services(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    services: Services = connection.app.state.services
    return services


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key a request presents: ``X-API-Key``, else ``Authorization: Bearer <key>``."""
    if given := headers.get(API_KEY_HEADER):
        return given
    authorization = headers.get(AUTHORIZATION_HEADER, "")
    if authorization[: len(_BEARER)].lower() == _BEARER:
        return authorization[len(_BEARER) :].strip() or None
    return None


def tenant_for_key(api_keys: Iterable[tuple[bytes, str]], given: str) -> str:
    """The tenant of API key ``given`` among ``api_keys`` (each encoded key and its tenant).

    Every configured key is compared with :func:`hmac.compare_digest`, whatever matches first, so
    the time taken does not tell which key prefix was right.

    Raises:
        UnauthorizedError: if the key is unknown.
    """
    presented = given.encode()
    tenant = None
    for key, key_tenant in api_keys:
        if hmac.compare_digest(presented, key) and tenant is None:
            tenant = key_tenant
    if tenant is None:
        raise UnauthorizedError("invalid API key")
    return tenant


async def api_key_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Admit requests with a known API key (:func:`presented_key`) and remember it and its tenant.

    The guard is a coroutine although it awaits nothing: Litestar runs a plain function guard in a
    worker thread, a thread hop on every request that cost a polled ``GET /v1/status`` more than the
    rest of its work.

    Raises:
        UnauthorizedError: if the key is missing or unknown.
    """
    given = presented_key(connection.headers)
    if not given:
        raise UnauthorizedError(f"missing API key: send the {API_KEY_HEADER} header or Authorization: Bearer")
    # The scope's own dict: ``connection.state`` builds a State around it on every access.
    state = connection.scope["state"]
    state[_TENANT_STATE] = tenant_for_key(_services(connection).api_keys, given)
    state[_KEY_STATE] = given


def tenant_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Tenant of the authenticated key (set by :func:`api_key_guard`)."""
    tenant: str = connection.scope["state"][_TENANT_STATE]
    return tenant


def api_key_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The authenticated key itself (set by :func:`api_key_guard`), for its rate limits."""
    key: str = connection.state.get(_KEY_STATE) or presented_key(connection.headers) or ""
    return key


async def admission_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Refuse a submission before its body is read when Redis is down or the queue is full.

    Raises:
        StoreUnavailableError: 503 when PostgreSQL or Redis cannot be reached.
        QueueFullError: 429 when ``MAIE_MAX_QUEUE_DEPTH`` tasks are unfinished.
    """
    services = _services(connection)
    server = services.settings.server
    if down := await services.store.unreachable():
        raise StoreUnavailableError(f"{' and '.join(down)} cannot be reached; try again shortly")
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
    await _services(connection).rate_limiter.hit(api_key_of(connection), "requests")


async def submission_rate_limit_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Count a submission against its key's ``MAIE_RATE_LIMIT_SUBMIT``, before the body is read.

    Raises:
        RateLimitedError: 429 with ``Retry-After``.
    """
    await _services(connection).rate_limiter.hit(api_key_of(connection), "submissions")
