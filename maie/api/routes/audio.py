"""A task's kept recording: GET /v1/tasks/{id}/audio (byte ranges) and POST .../audio/link (signed).

Recordings are kept only with ``MAIE_KEEP_AUDIO=true``; otherwise both answer 404 once the task
is processed. The link is for players that cannot send ``X-API-Key`` (a browser's ``<audio>``):
see :mod:`maie.api.audio_links`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter

from maie.api.audio_links import AudioLink, AudioSource, audio_link, kept_audio
from maie.api.byte_ranges import RANGE_RESPONSES, file_with_ranges
from maie.api.guards import tenant_of
from maie.api.queries import load_task

if TYPE_CHECKING:
    from litestar.di import NamedDependency
    from litestar.params import FromPath

    from maie.api.services import Services

__all__ = ["AudioController", "Source"]

#: The ``source`` query parameter.
Source = Annotated[
    AudioSource,
    Parameter(
        description="`playback`: the 16 kHz mono WAV the transcript's times refer to (falls back to "
        "the original until it exists); `original`: the recording as uploaded or fetched"
    ),
]


class AudioController(Controller):
    """The recording of a task, for listening along with its transcript."""

    path = "/tasks/{task_id:str}/audio"
    tags = ("results",)

    @get(
        "/",
        summary="The task's recording, with byte ranges (needs MAIE_KEEP_AUDIO=true)",
        description=(
            "Honours one `Range: bytes=...` (206, or 416 beyond the end) and `If-Range`; 404 when "
            "the server does not keep recordings."
        ),
        media_type="audio/wav",
        responses=RANGE_RESPONSES,
    )
    async def audio(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[str],
        services: NamedDependency[Services],
        source: Source = AudioSource.PLAYBACK,
    ) -> Response[Any]:
        """Stream the file, or the byte range asked for."""
        record = await load_task(services, task_id, tenant_of(request))
        path, media_type = kept_audio(record, source, services.settings.storage.data_dir)
        return file_with_ranges(request, path, media_type, {"Cache-Control": "private, no-cache"})

    @post(
        "/link",
        summary="A signed link to the recording, for players that cannot send X-API-Key",
        description=(
            "The link (on this server, outside /v1) opens the same file without a key, with byte "
            "ranges, until `expires_at`; it never contains the key. 404 when the audio is not kept."
        ),
        status_code=200,
    )
    async def link(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[str],
        services: NamedDependency[Services],
        source: Source = AudioSource.PLAYBACK,
    ) -> AudioLink:
        """Sign a link to the task's audio."""
        tenant = tenant_of(request)
        record = await load_task(services, task_id, tenant)
        kept_audio(record, source, services.settings.storage.data_dir)  # 404 now, not when played
        return audio_link(services.settings.auth, tenant, task_id, source, time.time())
