"""How the ``/openai/v1`` routes appear in the OpenAPI schema: OpenAI's error shape, several answer types.

Every ``/openai`` operation documents the statuses its router's guards answer (401, 429, 503) in
OpenAI's error shape (:func:`document_openai_errors`). The audio routes answer JSON, text,
SubRip, WebVTT or server-sent events depending on ``response_format`` and ``stream``;
:class:`AudioOperation` lists every one of those under 200.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.routes import HTTPRoute

from maie.openai_formats import ErrorResponse, Transcription, VerboseTranscription

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ["OPENAI_PREFIX", "AudioOperation", "document_openai_errors", "openai_error_responses"]

#: Where the OpenAI-compatible routes live.
OPENAI_PREFIX: Final = "/openai/v1"

_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "Malformed request: a bad field value (`param` names it), malformed multipart",
    401: "Missing or unknown API key (Authorization: Bearer, or X-API-Key)",
    404: "No such model (`code`: model_not_found)",
    413: "Body larger than MAIE_MAX_FILE_SIZE_MB",
    415: "Not audio MAIE can decode",
    422: "Well-formed, but not something this server can do: a backend that cannot translate, an "
    "option the backend does not have, audio too short or too long (the message says why)",
    429: "Rate limit of this API key used up, or the queue is full; Retry-After says when to retry",
    503: "Redis cannot be reached; Retry-After says when to retry",
    504: "The task did not finish within MAIE_SYNC_TIMEOUT_S (or failed on a server error); it goes "
    "on: `task_id` and `status_url` say where to follow it (x-should-retry: false)",
}
#: Statuses every ``/openai`` route can answer: a bad key, a spent rate limit, Redis down.
OPENAI_ERRORS: Final = (401, 429, 503)
#: The other answers of the audio routes, by ``response_format`` (and ``stream``).
_TEXT_TYPES: Final = ("text/plain", "application/x-subrip", "text/vtt", "text/event-stream")


def openai_error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI response specs (OpenAI's :class:`~maie.openai_formats.ErrorResponse`) for ``codes``."""
    return {
        code: ResponseSpec(
            data_container=ErrorResponse, description=_DESCRIPTIONS[code], generate_examples=False
        )
        for code in codes
    }


@dataclass
class AudioOperation(Operation):
    """An audio route's operation, whose 200 lists JSON, text, SubRip, WebVTT and event streams."""

    def __post_init__(self) -> None:
        responses = self.responses or {}
        ok = responses.get("200")
        content = dict(ok.content or {}) if isinstance(ok, OpenAPIResponse) else {}
        text = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
        content.update(dict.fromkeys(_TEXT_TYPES, text))
        responses["200"] = OpenAPIResponse(
            description=(
                "The transcript: JSON for `json` and `verbose_json`, text for `text`, `srt` and `vtt`, "
                "server-sent events (`transcript.text.delta`, `transcript.text.done`) with `stream=true`. "
                "X-MAIE-Task-ID names the task."
            ),
            content=content,
        )
        self.responses = responses


#: The JSON answers of the audio routes (200), for their ``responses``.
AUDIO_JSON: Final = ResponseSpec(
    data_container=cast("type[Any]", Transcription | VerboseTranscription),
    description="The transcript",
    generate_examples=False,
)


def document_openai_errors(app: Litestar) -> None:
    """Add the statuses every ``/openai`` route can answer to each one's OpenAPI responses.

    Run on a new app, before its schema is first built. A handler's own description of a status wins.
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith(f"{OPENAI_PREFIX}/"):
            continue
        for handler in route.route_handlers:
            handler.responses = {**openai_error_responses(*OPENAI_ERRORS), **(handler.responses or {})}
