"""One mapping from exceptions to JSON error responses ``{"detail", "status_code", "extra"?}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from litestar import Response
from litestar.exceptions import HTTPException

from maie.api.request_id import request_id_of
from maie.errors import MaieError, QueueFullError, RateLimitedError, TransientError
from maie.schemas import ErrorBody

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import ExceptionHandlersMap

__all__ = ["exception_handlers"]

log = structlog.get_logger(__name__)


def _error(
    status: int,
    detail: str,
    extra: dict[str, Any] | list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorBody]:
    return Response(
        ErrorBody(detail=detail, status_code=status, extra=extra or None), status_code=status, headers=headers
    )


def _maie_error(request: Request[Any, Any, Any], exc: MaieError) -> Response[ErrorBody]:
    headers = None
    if isinstance(exc, QueueFullError | RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after_s)}
    elif isinstance(exc, TransientError):
        headers = {"Retry-After": str(request.app.state.services.settings.server.busy_retry_after_s)}
    if exc.status_code >= 500:  # noqa: PLR2004 - server-side errors are worth a log line
        # The full detail goes to the log (with the request id bound by the middleware); the client
        # gets the public one and the id to quote, so it never learns internal addresses.
        log.warning("api.error", status_code=exc.status_code, detail=exc.detail, path=request.url.path)
    detail = exc.public_detail
    if detail != exc.detail and (request_id := request_id_of(request)) is not None:
        detail = f"{detail} (request id {request_id})"
    return _error(exc.status_code, detail, exc.extra, headers)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    return _error(exc.status_code, exc.detail, exc.extra, exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.error("api.unexpected_error", path=request.url.path, exc_info=exc)
    detail = "internal error"
    if request.app.state.services.settings.server.debug:
        detail = f"internal error: {exc!r}"
    return _error(500, detail)


exception_handlers: ExceptionHandlersMap = {
    MaieError: _maie_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
