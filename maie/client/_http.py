"""What both clients share: submission options, error mapping, decoding and back-off."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack

import httpx
import msgspec

from maie import __version__
from maie.errors import (
    ConflictError,
    InvalidRequestError,
    MaieError,
    NotFoundError,
    PayloadTooLargeError,
    QueueFullError,
    StoreUnavailableError,
    TransientError,
    UnauthorizedError,
    UnprocessableError,
    UnsupportedMediaError,
)
from maie.schemas import SubmissionOptions

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from contextlib import ExitStack

__all__ = [
    "MAX_BACKOFF_S",
    "RETRY_STATUS",
    "Submission",
    "SubmitOptions",
    "TaskFilters",
    "decode",
    "error_of",
    "filter_params",
    "headers_of",
    "pause",
    "retry_after",
]

T = TypeVar("T")

#: Error class for each status code the API answers with.
_ERRORS: dict[int, type[MaieError]] = {
    400: InvalidRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaError,
    422: UnprocessableError,
    503: StoreUnavailableError,
}
#: Status codes after which the same request may succeed later.
RETRY_STATUS = frozenset({429, 502, 503, 504})
#: Longest pause between two attempts, in seconds.
MAX_BACKOFF_S = 60.0
#: Status codes from which on the server is at fault.
_SERVER_ERRORS = 500


class TaskFilters(TypedDict, total=False):
    """Keyword filters of ``tasks`` and ``search`` (docs/api.md, GET /v1/tasks)."""

    #: One status, or several comma-separated.
    status: str
    #: Submitted at or after this time (an aware datetime, or ISO 8601 text).
    submitted_after: datetime | str
    #: Submitted before this time.
    submitted_before: datetime | str
    template_id: str
    batch_id: str


def filter_params(filters: TaskFilters) -> dict[str, Any]:
    """The query parameters of ``filters`` (times in ISO 8601)."""
    return {
        k: v.isoformat() if isinstance(v, datetime) else str(v) for k, v in filters.items() if v is not None
    }


class SubmitFields(TypedDict, total=False):
    """Keyword options of ``submit`` and ``submit_batch``: the fields of :class:`SubmitOptions`.

    Type checkers need the keywords spelled out; a test checks they are the submission fields.
    """

    features: Sequence[str] | None
    template_id: str | None
    asr_backend: str | None
    language: str | None
    word_timestamps: bool | None
    callback_url: str | None
    hotwords: str | None
    initial_prompt: str | None
    beam_size: int | None
    model: str | None
    diarize: bool | None
    diarization_backend: str | None
    num_speakers: int | None
    min_speakers: int | None
    max_speakers: int | None
    task: str | None


class SubmitOptions(SubmissionOptions, frozen=True, kw_only=True):
    """The options of POST /v1/process and /v1/batches (see docs/api.md); None means the default.

    The fields are the submission fields of :class:`~maie.schemas.SubmissionOptions`.
    """

    @classmethod
    def of(cls, **fields: Unpack[SubmitFields]) -> SubmitOptions:
        """The options from keyword arguments, as the clients' ``submit`` methods take them."""
        features = fields.get("features")
        return msgspec.convert({**fields, "features": tuple(features) if features else None}, cls)

    def form(self) -> dict[str, Any]:
        """The multipart form fields of the options that are set (a list is a repeated field)."""
        form: dict[str, Any] = msgspec.to_builtins(self)
        return {
            name: ("true" if value else "false") if isinstance(value, bool) else value
            for name, value in form.items()
        }


def error_of(response: httpx.Response) -> MaieError:
    """The error an error response stands for, with the server's ``detail`` and ``extra``."""
    try:
        body = response.json()
        detail, extra = str(body.get("detail", response.text)), body.get("extra")
    except ValueError:
        detail, extra = response.text or response.reason_phrase, None
    extra = extra if isinstance(extra, dict) else None
    if response.status_code == QueueFullError.status_code:
        return QueueFullError(detail, retry_after_s=retry_after(response) or 1, extra=extra)
    fallback = TransientError if response.status_code >= _SERVER_ERRORS else MaieError
    return _ERRORS.get(response.status_code, fallback)(f"HTTP {response.status_code}: {detail}", extra=extra)


def decode(response: httpx.Response, kind: type[T]) -> T:
    """The body as ``kind``.

    Raises:
        MaieError: the error of an error response (see :func:`error_of`).
    """
    if response.is_error:
        raise error_of(response)
    return msgspec.json.decode(response.content, type=kind)


def retry_after(response: httpx.Response) -> int | None:
    """The response's ``Retry-After`` in seconds, if it has one."""
    value = response.headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None


def pause(attempt: int, response: httpx.Response | None) -> float:
    """Seconds before attempt ``attempt + 1``: the server's Retry-After, else jittered doubling."""
    if response is not None and (after := retry_after(response)) is not None:
        return float(after)
    backoff: float = min(MAX_BACKOFF_S, 0.5 * 2.0**attempt)
    return backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


def headers_of(api_key: str) -> dict[str, str]:
    """Headers of every request."""
    return {"X-API-Key": api_key, "User-Agent": f"maie-client/{__version__}"}


class Submission:
    """What one POST of files and URLs carries; the files are opened afresh for every attempt."""

    def __init__(
        self,
        url: str,
        paths: Iterable[Path],
        options: SubmitOptions,
        key: str | None,
        *,
        links: Iterable[str] = (),
    ) -> None:
        self.url = url
        self.paths = [Path(p) for p in paths]
        #: Recordings' URLs, each sent as a ``url`` field.
        self.links = list(links)
        self.form = options.form()
        self.headers = {"Idempotency-Key": key} if key else {}
        #: With a key a repeat is harmless, so even a request whose answer was lost is retried;
        #: without one only a request that never reached the server is.
        self.retry_errors: tuple[type[Exception], ...] = (
            (httpx.TransportError,) if key else (httpx.ConnectError, httpx.ConnectTimeout)
        )
        #: Statuses retried with back-off. With a key, also 409: the first request with it is
        #: still being handled (or its API died; the server frees the key within seconds), and
        #: a later try gets its answer.
        self.retry_status: frozenset[int] = RETRY_STATUS | {409} if key else RETRY_STATUS

    def files(self, stack: ExitStack) -> list[tuple[str, tuple[str | None, Any]]]:
        """The ``file`` parts, opened on ``stack``, and the ``url`` fields.

        The URLs go as parts too: without a file, httpx would send the fields form-encoded, and
        the API takes multipart/form-data only.
        """
        files: list[tuple[str, tuple[str | None, Any]]] = [
            ("file", (p.name, stack.enter_context(p.open("rb")))) for p in self.paths
        ]
        return files + [("url", (None, link)) for link in self.links]
