"""One error tree for the whole service.

Every error MAIE raises on purpose is a :class:`MaieError`. It carries the HTTP status the API
answers with, a stable machine-readable ``code`` (stored on failed tasks as ``error_code``), and
whether the worker should retry the message (``retryable``). The API maps the tree to JSON errors
in one handler; the worker maps it to "retry" or "fail the task now".

What is permanent is defined once, by :data:`PERMANENT_ERRORS`: Dramatiq's ``throws=`` takes the
tuple itself, and :func:`is_permanent` and ``retryable`` are derived from it, so the broker and
the stage bookkeeping cannot disagree about a new error class.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

__all__ = [
    "PERMANENT_ERRORS",
    "ArchiveLimitError",
    "AudioTooLongError",
    "AudioTooShortError",
    "BackendUnavailableError",
    "CallbackRefusedError",
    "ConfigError",
    "ConflictError",
    "DecodeLimitError",
    "FetchConnectionError",
    "FetchDnsUnavailableError",
    "FetchHttpError",
    "FetchHttpUnavailableError",
    "FetchInvalidUrlError",
    "FetchNoMediaError",
    "FetchRefusedAddressError",
    "FetchTimeoutError",
    "FetchTlsError",
    "FetchTooLargeError",
    "FetchTooManyRedirectsError",
    "FetchTooSlowError",
    "FetchUnresolvableError",
    "InvalidRequestError",
    "LlmOutputError",
    "LlmRequestError",
    "LlmUnavailableError",
    "MaieError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermanentError",
    "QueueFullError",
    "RateLimitedError",
    "ResultTimeoutError",
    "StoreUnavailableError",
    "StreamFrameError",
    "StreamIdleError",
    "StreamLimitError",
    "StreamOverflowError",
    "StreamProtocolError",
    "StreamTooLongError",
    "TransientError",
    "UnauthorizedError",
    "UnprocessableError",
    "UnsupportedMediaError",
    "is_permanent",
]


class MaieError(Exception):
    """Base of every error MAIE raises on purpose."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}

    @property
    def public_detail(self) -> str:
        """What an HTTP client is told: the detail, unless it may name the server's internals."""
        return self.detail

    @property
    def retryable(self) -> bool:
        """Whether the worker retries a message that raised this (see :func:`is_permanent`)."""
        return not is_permanent(self)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with every attribute, so an error raised in a child process arrives whole."""
        return (_restore, (type(self), self.args, self.__dict__))


class PermanentError(MaieError):
    """Raised when retrying cannot help: the task fails at once."""

    code = "permanent_error"


class TransientError(MaieError):
    """Raised when a retry may succeed (a Redis hiccup, a model server timeout)."""

    status_code = 503
    code = "transient_error"


class ConfigError(PermanentError):
    """Raised when the configuration is invalid; names the variable and what is wrong."""

    code = "config_error"


class InvalidRequestError(PermanentError):
    """Raised when a request is malformed: a bad field value or an unsafe filename."""

    status_code = 400
    code = "invalid_request"


class UnauthorizedError(PermanentError):
    """Raised when the API key is missing or wrong."""

    status_code = 401
    code = "unauthorized"


class NotFoundError(PermanentError):
    """Raised when a task or template does not exist for this tenant."""

    status_code = 404
    code = "not_found"


class PayloadTooLargeError(PermanentError):
    """Raised when an upload is larger than MAIE_MAX_FILE_SIZE_MB."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaError(PermanentError):
    """Raised when a file is not decodable audio."""

    status_code = 415
    code = "unsupported_media"


class UnprocessableError(PermanentError):
    """Raised when a well-formed request asks for something MAIE cannot do."""

    status_code = 422
    code = "unprocessable"


class AudioTooShortError(UnprocessableError):
    """Raised when audio is shorter than MAIE_MIN_DURATION_S."""

    code = "audio_too_short"


class AudioTooLongError(UnprocessableError):
    """Raised when audio is longer than MAIE_MAX_DURATION_S."""

    code = "audio_too_long"


class BackendUnavailableError(UnprocessableError):
    """Raised when a requested backend is unknown or cannot run on this host."""

    code = "backend_unavailable"


class ModelLoadError(PermanentError):
    """Raised when a model cannot be loaded (missing weights, unusable device)."""

    code = "model_load_failed"


class QueueFullError(TransientError):
    """Raised when the queue is at MAIE_MAX_QUEUE_DEPTH; the client should come back later."""

    status_code = 429
    code = "queue_full"

    def __init__(self, detail: str, *, retry_after_s: int, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra=extra)
        self.retry_after_s = retry_after_s


class StoreUnavailableError(TransientError):
    """Raised when Redis cannot be reached."""

    status_code = 503
    code = "store_unavailable"

    @property
    def public_detail(self) -> str:
        """A fixed sentence: the detail quotes the driver's error, which names the store's address."""
        return "the task store cannot be reached right now; try again after Retry-After seconds"


class RateLimitedError(TransientError):
    """Raised when an API key sent more requests than its rate limit allows."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after_s: int, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra=extra)
        self.retry_after_s = retry_after_s


class DecodeLimitError(UnsupportedMediaError):
    """Raised when decoding a file broke its time or memory limit, or crashed the decoder."""

    code = "decode_limit"


def _restore(kind: type[MaieError], args: tuple[Any, ...], state: dict[str, Any]) -> MaieError:
    error = kind.__new__(kind)
    error.args = args
    error.__dict__.update(state)
    return error


class ConflictError(PermanentError):
    """Raised when a request clashes with the current state: a task not finished, a key in use."""

    status_code = 409
    code = "conflict"


class ArchiveLimitError(PayloadTooLargeError):
    """Raised when an archive exceeds the batch limits (entries, unpacked size, compression ratio)."""

    code = "archive_limit"


class CallbackRefusedError(UnprocessableError):
    """Raised when a callback_url is not allowed: bad scheme, unresolvable, or a private address."""

    code = "callback_refused"


class LlmUnavailableError(TransientError):
    """Raised when the LLM server fails or times out after MAIE's own retries; the stage is retried."""

    code = "llm_unavailable"


class LlmRequestError(PermanentError):
    """Raised when the LLM refuses a request for good (unknown model, context too small, bad params)."""

    code = "llm_request_refused"


class LlmOutputError(PermanentError):
    """Raised when an LLM answer stays unusable (invalid JSON, off-schema, truncated) after retries."""

    code = "llm_output_invalid"


#: What fails a task at once instead of being retried: MAIE's permanent errors, and running out of
#: memory (a retry on the same worker would run out again). The actors' ``throws=``.
PERMANENT_ERRORS: Final[tuple[type[BaseException], ...]] = (PermanentError, MemoryError)


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying ``exc`` cannot help: it is one of :data:`PERMANENT_ERRORS`."""
    return isinstance(exc, PERMANENT_ERRORS)


# Fetching a recording from a URL. Which are worth a retry: what a server or the network may fix
# by itself (a 503, a reset connection, a stall); never what the URL itself decides (an address
# that is refused, a 404, a file too large).


class FetchInvalidUrlError(UnprocessableError):
    """Raised when a recording's URL is malformed, too long or not http(s)."""

    code = "fetch_invalid_url"


class FetchUnresolvableError(UnprocessableError):
    """Raised when a recording's host has no address (the name does not exist)."""

    code = "fetch_unresolvable"


class FetchRefusedAddressError(UnprocessableError):
    """Raised when a recording's host, or a redirect's, resolves to an address MAIE may not call."""

    code = "fetch_refused_address"


class FetchTooLargeError(PayloadTooLargeError):
    """Raised when a recording at a URL is larger than the upload size limit."""

    code = "fetch_too_large"


class FetchTooManyRedirectsError(UnprocessableError):
    """Raised when a URL redirects more times than the fetch allows."""

    code = "fetch_too_many_redirects"


class FetchTooSlowError(UnprocessableError):
    """Raised when a download is slower than the minimum rate or outlasts the total time limit."""

    code = "fetch_too_slow"


class FetchHttpError(UnprocessableError):
    """Raised when the server answers a status that retrying cannot change (404, 403, 410...)."""

    code = "fetch_http_error"

    def __init__(self, detail: str, *, http_status: int, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra={"http_status": http_status, **(extra or {})})
        self.http_status = http_status


class FetchHttpUnavailableError(TransientError):
    """Raised when the server answers a status that may pass (503, 502, 429...); the fetch is retried."""

    status_code = 502
    code = "fetch_http_unavailable"

    def __init__(self, detail: str, *, http_status: int, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra={"http_status": http_status, **(extra or {})})
        self.http_status = http_status


class FetchConnectionError(TransientError):
    """Raised when the connection fails, is reset or breaks mid-transfer; the fetch is retried."""

    status_code = 502
    code = "fetch_connection_failed"


class FetchTimeoutError(TransientError):
    """Raised when connecting takes too long or the server sends nothing for the stall timeout."""

    status_code = 504
    code = "fetch_timeout"


class FetchTlsError(UnprocessableError):
    """Raised when the server's TLS certificate cannot be verified."""

    code = "fetch_tls_failed"


class FetchNoMediaError(UnsupportedMediaError):
    """Raised when a web page holds no audio or video that MAIE can download."""

    code = "fetch_no_media"


class FetchDnsUnavailableError(TransientError):
    """Raised at submit time when the resolver cannot answer for now; the client retries later."""

    status_code = 503
    code = "fetch_dns_unavailable"


class StreamFrameError(InvalidRequestError):
    """Raised when a live-transcription frame cannot be decoded in the session's encoding or is too big."""

    code = "bad_frame"


class StreamOverflowError(TransientError):
    """Raised when a live client sends audio faster than it is transcribed, past MAIE_STREAM_MAX_BACKLOG_S."""

    status_code = 429
    code = "stream_overflow"


class StreamTooLongError(AudioTooLongError):
    """Raised when a live-transcription session reaches MAIE_STREAM_MAX_SESSION_S of audio."""

    code = "stream_too_long"


class ModelNotFoundError(NotFoundError):
    """Raised when a request names a model (an OpenAI model id) that this server does not have."""

    code = "model_not_found"


class ResultTimeoutError(TransientError):
    """Raised when a task did not finish within MAIE_SYNC_TIMEOUT_S; it goes on, and can be followed."""

    status_code = 504
    code = "result_timeout"


class StreamProtocolError(InvalidRequestError):
    """Raised when a live-transcription client sends a message the protocol does not have, or out of turn."""

    code = "bad_message"


class StreamIdleError(InvalidRequestError):
    """Raised when a live-transcription client sends nothing for MAIE_STREAM_IDLE_TIMEOUT_S."""

    code = "stream_idle"


class StreamLimitError(TransientError):
    """Raised when a process or an API key has all the live sessions it may (MAIE_STREAM_MAX_SESSIONS*)."""

    status_code = 429
    code = "too_many_sessions"
