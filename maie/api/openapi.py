"""Error answers as the OpenAPI schema documents them, one description per status for every route.

Each handler lists the statuses it can answer with ``responses=error_responses(...)``, so the schema
says what clients will really get; a schemathesis test checks every operation against it.
"""

from __future__ import annotations

from typing import Final

from litestar.openapi import ResponseSpec

from maie.schemas import ErrorBody

__all__ = ["V1_ERRORS", "error_responses"]

#: What each error status means, for every route that can answer it.
_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "Malformed request: a bad field value, malformed multipart, an unsafe filename",
    401: "Missing or unknown X-API-Key",
    404: "No such resource for this API key",
    413: "Body larger than MAIE_MAX_FILE_SIZE_MB",
    415: "Not audio MAIE can decode, or decoding broke its time or memory limit",
    422: "Well-formed, but not something this server can do (the detail says why)",
    429: "Rate limit of this API key used up, or the queue is full; Retry-After says when to retry",
    503: "Redis cannot be reached; Retry-After says when to retry",
}
#: Statuses every ``/v1`` route can answer: a bad key, a spent rate limit, Redis down.
V1_ERRORS: Final = (401, 429, 503)


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI response specs (JSON :class:`~maie.schemas.ErrorBody`) for ``codes``."""
    return {
        code: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[code], generate_examples=False)
        for code in codes
    }
