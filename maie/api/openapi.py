"""Error answers as the OpenAPI schema documents them, one description per status for every route.

Handlers list the statuses only they answer with ``responses=error_responses(...)``. What the
``/v1`` router's guards answer on every route (401, 429, 503), and the 404 of any route naming a
resource in its path, :func:`document_v1_errors` adds to every ``/v1`` operation, so a new route
cannot forget them. A schemathesis test checks every operation against the schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.routes import HTTPRoute

from maie.schemas import ErrorBody

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ["V1_ERRORS", "BatchExportOperation", "document_v1_errors", "error_responses"]

#: What each error status means, for every route that can answer it.
_DESCRIPTIONS: Final[dict[int, str]] = {
    400: (
        "Malformed request: a bad field value, malformed multipart, a text field that is not text, "
        "a file sent as a text field, an unsafe filename"
    ),
    401: "Missing or unknown X-API-Key",
    404: "No such resource for this API key",
    409: "Clashes with the current state: the same Idempotency-Key still running, no transcript yet",
    413: (
        "Body larger than MAIE_MAX_FILE_SIZE_MB, a text field over its limit, too many form parts, "
        "or an archive over the batch limits"
    ),
    415: (
        "Not audio MAIE can decode, decoding broke its time or memory limit, or a body that is not "
        "multipart/form-data"
    ),
    422: "Well-formed, but not something this server can do (the detail says why)",
    429: "Rate limit of this API key used up, or the queue is full; Retry-After says when to retry",
    503: (
        "Redis cannot be reached, or a recording URL's host cannot be resolved for now; "
        "Retry-After says when to retry"
    ),
}
#: Statuses every ``/v1`` route can answer: a bad key, a spent rate limit, Redis down.
V1_ERRORS: Final = (401, 429, 503)


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI response specs (JSON :class:`~maie.schemas.ErrorBody`) for ``codes``."""
    return {
        code: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[code], generate_examples=False)
        for code in codes
    }


def document_v1_errors(app: Litestar) -> None:
    """Add the statuses every ``/v1`` route can answer to each one's OpenAPI responses.

    Run on a new app, before its schema is first built (Litestar builds it on first use). A
    handler's own description of a status wins.
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/v1/"):
            continue
        codes = (404, *V1_ERRORS) if "{" in route.path else V1_ERRORS
        for handler in route.route_handlers:
            handler.responses = {**error_responses(*codes), **(handler.responses or {})}


@dataclass
class BatchExportOperation(Operation):
    """The batch export's operation: its 200 is JSON Lines or CSV (``format``), both streamed text.

    Litestar documents a streamed answer under one media type (the handler's); this one has two.
    """

    def __post_init__(self) -> None:
        """Describe the 200 answer under both media types it can have."""
        text = Schema(type=OpenAPIType.STRING)
        if self.responses is not None:
            self.responses["200"] = OpenAPIResponse(
                description="The batch's rows: JSON Lines for format=jsonl, CSV for format=csv",
                content={
                    "application/x-ndjson": OpenAPIMediaType(schema=text),
                    "text/csv": OpenAPIMediaType(schema=text),
                },
            )
