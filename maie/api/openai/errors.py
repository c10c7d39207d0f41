"""Errors of the ``/openai/v1`` routes in OpenAI's shape, so OpenAI's SDKs raise their own classes.

The body is ``{"error": {"message", "type", "param", "code"}}`` with the status the SDK maps to its
exception classes (401 ``AuthenticationError``, 400 ``BadRequestError``, 404 ``NotFoundError``,
422 ``UnprocessableEntityError``, 429 ``RateLimitError``, 5xx ``InternalServerError``); ``code`` is
MAIE's own error code. The SDK retries 408, 409, 429 and 5xx answers by itself, which is right
while nothing was made, and wrong once a task exists: then the answer names the task
(``task_id``, ``status_url``) and says ``x-should-retry: false``, so the recording is not sent again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec
import structlog
from litestar import Response
from litestar.exceptions import HTTPException

from maie.errors import MaieError, QueueFullError, RateLimitedError, TransientError
from maie.openai_formats import ErrorBody, ErrorResponse, error_body, error_type

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import ExceptionHandlersMap

__all__ = ["NO_RETRY", "error_answer", "openai_exception_handlers", "status_of_code"]

log = structlog.get_logger(__name__)

#: The header that tells OpenAI's SDKs not to retry (a task was made already).
NO_RETRY: Final = {"x-should-retry": "false"}
#: MAIE's code for Litestar's own errors, by status.
_HTTP_CODES: Final = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def error_answer(body: ErrorResponse, status: int, headers: dict[str, str] | None = None) -> Response[bytes]:
    """An OpenAI error response."""
    return Response(
        msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers
    )


def _maie_error(request: Request[Any, Any, Any], exc: MaieError) -> Response[bytes]:
    headers: dict[str, str] = {}
    if isinstance(exc, QueueFullError | RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, TransientError):
        headers["Retry-After"] = str(request.app.state.services.settings.server.busy_retry_after_s)
    task_id = exc.extra.get("task_id")
    if isinstance(task_id, str):
        headers.update(NO_RETRY)
    if exc.status_code >= 500:  # noqa: PLR2004 - server-side errors are worth a log line
        log.warning("api.error", status_code=exc.status_code, detail=exc.detail, path=request.url.path)
    param = exc.extra.get("param")
    body = error_body(
        exc,
        param=param if isinstance(param, str) else None,
        task_id=task_id if isinstance(task_id, str) else None,
    )
    return error_answer(body, exc.status_code, headers)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's own errors: validation (400), body too large (413), method not allowed (405)."""
    param = None
    if isinstance(exc.extra, list) and exc.extra and isinstance(exc.extra[0], dict):
        key = exc.extra[0].get("key")
        param = key if isinstance(key, str) else None
        message = exc.extra[0].get("message")
        detail = f"{exc.detail}: {param}: {message}" if param and isinstance(message, str) else exc.detail
    else:
        detail = exc.detail
    body = ErrorBody(
        message=detail,
        type=error_type(exc.status_code),
        param=param,
        code=_HTTP_CODES.get(exc.status_code, "invalid_request"),
    )
    return error_answer(ErrorResponse(error=body), exc.status_code, exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("api.unexpected_error", path=request.url.path, exc_info=exc)
    detail = "internal error"
    if request.app.state.services.settings.server.debug:
        detail = f"internal error: {exc!r}"
    body = ErrorBody(message=detail, type="server_error", param=None, code="internal_error")
    return error_answer(ErrorResponse(error=body), 500)


def status_of_code(code: str | None) -> int:
    """The HTTP status of MAIE's error ``code`` (500 for an unknown one), from the error tree."""
    pending: list[type[MaieError]] = [MaieError]
    while pending:
        kind = pending.pop()
        if kind.code == code:
            return kind.status_code
        pending += kind.__subclasses__()
    return 500


openai_exception_handlers: ExceptionHandlersMap = {
    MaieError: _maie_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
