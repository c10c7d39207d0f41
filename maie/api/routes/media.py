"""GET /media/tasks/{id}/audio: a recording opened by a signed link, without an API key.

Outside ``/v1`` because the caller (a browser's ``<audio>`` element) cannot send ``X-API-Key``;
the signature made by POST /v1/tasks/{id}/audio/link stands in for it
(:mod:`maie.api.audio_links`). An unknown task and a wrong signature answer alike (403), so ids
cannot be probed here.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.params import Parameter

from maie.api.audio_links import AudioSource, LinkRefusedError, check_link, kept_audio
from maie.api.byte_ranges import RANGE_RESPONSES, file_with_ranges
from maie.api.openapi import error_responses
from maie.errors import NotFoundError
from maie.schemas import ErrorBody

if TYPE_CHECKING:
    from litestar.di import NamedDependency
    from litestar.params import FromPath

    from maie.api.services import Services

__all__ = ["MediaController"]

_REFUSED = ResponseSpec(
    data_container=ErrorBody,
    description="The link's signature does not match, its task is unknown, or it has expired",
    generate_examples=False,
)


class MediaController(Controller):
    """Recordings behind signed links."""

    path = "/media/tasks/{task_id:str}/audio"
    tags = ("results",)

    @get(
        "/",
        summary="A task's recording by a signed link (from POST /v1/tasks/{id}/audio/link)",
        media_type="audio/wav",
        responses={
            **RANGE_RESPONSES,
            403: _REFUSED,
            **error_responses(404, 503),
        },
    )
    async def audio(
        self,
        *,
        request: Request[Any, Any, Any],
        task_id: FromPath[str],
        services: NamedDependency[Services],
        expires: Annotated[int, Parameter(description="Unix time the link expires at")],
        signature: Annotated[str, Parameter(max_length=128, description="The link's signature")],
        source: Annotated[AudioSource, Parameter(description="As for /v1/tasks/{id}/audio")] = (
            AudioSource.PLAYBACK
        ),
    ) -> Response[Any]:
        """Stream the recording, or the byte range asked for."""
        try:
            uuid.UUID(task_id)
            record = await services.store.get(task_id)
        except (ValueError, NotFoundError):
            raise LinkRefusedError(detail="this audio link is not valid; ask for a new one") from None
        settings = services.settings
        check_link(settings.auth, record, source, expires=expires, signature=signature, now=time.time())
        path, media_type = kept_audio(record, source, settings.storage.data_dir)
        # The link is the credential: keep the answer out of shared caches.
        return file_with_ranges(request, path, media_type, {"Cache-Control": "private, max-age=0"})
