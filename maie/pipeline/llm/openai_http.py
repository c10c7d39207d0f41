"""One call to an OpenAI-compatible server, classified: retry it, refuse it, or use the answer.

A 5xx, 429 or 408 answer, a timeout, a connection error or a malformed body is worth another try
(:class:`RetryableError`); :func:`with_retries` retries it with exponential back-off (tenacity)
and, when the tries run out, raises :class:`~maie.errors.LlmUnavailableError` (transient: the
worker retries the stage later). Any other 4xx is a refusal that retrying cannot fix:
:class:`~maie.errors.LlmRequestError` with the server's own message.

The errors name the server by its setting, never by its address: their detail becomes a failed
task's ``error``, which every client of the task reads, and the LLM server is usually an internal
host. The address is logged (``llm.request_refused``, ``llm.unavailable``) with the task's request id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import structlog
import tenacity

from maie.errors import LlmRequestError, LlmUnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MAX_BACKOFF_S", "SERVER", "RetryableError", "call_json", "server_message", "with_retries"]

log = structlog.get_logger(__name__)

#: Longest pause between two retries of one request, in seconds.
MAX_BACKOFF_S = 30.0
#: Characters of a server's error body quoted in MAIE's error messages.
EXCERPT = 300
#: How errors name the server: by the setting that holds its address.
SERVER = "the LLM server (MAIE_LLM_BASE_URL)"

T = TypeVar("T")


class RetryableError(Exception):
    """A failure worth another try: 5xx, 429, 408, timeout, connection error, malformed answer."""


def call_json(client: httpx.Client, base_url: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:  # noqa: ANN401
    """``method`` ``path`` on ``client``; the JSON object answered.

    Raises:
        RetryableError: the call may succeed if repeated.
        LlmRequestError: the server refused it (4xx other than 408/429); ``extra["status"]`` holds
            the status code.
    """
    url = f"{method} /{path}"  # the endpoint without the server's address (see the module doc)
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TimeoutException as exc:
        msg = f"{url}: no answer within the timeout ({type(exc).__name__})"
        raise RetryableError(msg) from exc
    except httpx.TransportError as exc:
        msg = f"{url}: {type(exc).__name__}: {exc}"
        raise RetryableError(msg) from exc
    status = response.status_code
    if status >= httpx.codes.INTERNAL_SERVER_ERROR or status in (
        httpx.codes.TOO_MANY_REQUESTS,
        httpx.codes.REQUEST_TIMEOUT,
    ):
        msg = f"{url}: HTTP {status}: {response.text[:EXCERPT]}"
        raise RetryableError(msg)
    if status >= httpx.codes.BAD_REQUEST:
        reason = server_message(response)
        log.warning("llm.request_refused", base_url=base_url, endpoint=url, status=status, reason=reason)
        raise LlmRequestError(f"{SERVER} refused {url} (HTTP {status}): {reason}", extra={"status": status})
    try:
        data = response.json()
    except ValueError as exc:
        msg = f"{url}: answer is not JSON: {response.text[:EXCERPT]}"
        raise RetryableError(msg) from exc
    if not isinstance(data, dict):
        msg = f"{url}: answer is not a JSON object"
        raise RetryableError(msg)
    return data


def with_retries(
    fn: Callable[..., T],
    *args: Any,  # noqa: ANN401 - passed through to fn
    retries: int,
    backoff_s: float,
    base_url: str,
) -> T:
    """Call ``fn(*args)``, retrying :class:`RetryableError` ``retries`` times with back-off.

    Raises:
        LlmUnavailableError: every try failed; says how often and the last reason.
    """
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=tenacity.wait_exponential(multiplier=backoff_s, max=MAX_BACKOFF_S),
        retry=tenacity.retry_if_exception_type(RetryableError),
        before_sleep=_log_retry,
        reraise=True,
    )
    try:
        return retrying(fn, *args)
    except RetryableError as exc:
        log.warning("llm.unavailable", base_url=base_url, tries=retries + 1, last=str(exc))
        raise LlmUnavailableError(f"{SERVER} failed {retries + 1} time(s) in a row; last: {exc}") from exc


def _log_retry(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    log.warning("llm.request_retry", attempt=state.attempt_number, error=str(error))


def server_message(response: httpx.Response) -> str:
    """The message of an OpenAI-style error body (``{"error": {"message": ...}}``), else its start."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:EXCERPT]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:EXCERPT]
        if isinstance(error, str):
            return error[:EXCERPT]
        if data.get("detail") or data.get("message"):
            return str(data.get("detail") or data.get("message"))[:EXCERPT]
    return response.text[:EXCERPT]
