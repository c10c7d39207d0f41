"""Transcript exports: GET /v1/tasks/{id}/transcript.{txt,srt,vtt,json,rttm}.

Rendered from the segments of a result version (the latest, or ``?version=n``) by
:mod:`maie.transcripts`; RTTM from its diarization turns. A task that was not diarized has no
RTTM (404); one diarized without finding speech has an empty one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.params import Parameter

from maie.api.guards import tenant_of
from maie.api.openapi import error_responses
from maie.api.queries import load_result, load_task
from maie.errors import ConflictError, NotFoundError
from maie.schemas import TaskStatus
from maie.transcripts import MEDIA_TYPES, ExportFormat, TranscriptExport, render

if TYPE_CHECKING:
    from litestar.di import NamedDependency
    from litestar.params import FromPath

    from maie.api.services import Services

__all__ = ["ExportsController"]

#: The ``version`` query parameter.
Version = Annotated[int | None, Parameter(ge=1, description="Result version to export; default: the latest")]


async def _export(
    request: Request[Any, Any, Any], services: Services, task_id: str, version: int | None, fmt: ExportFormat
) -> Response[bytes]:
    record = await load_task(services, task_id, tenant_of(request))
    if record.result_version is None:
        if record.status == TaskStatus.FAILED:
            raise ConflictError(f"task {task_id} failed and has no transcript: {record.error}")
        raise ConflictError(
            f"task {task_id} is {record.status.value}; its transcript can be exported once it is COMPLETE"
        )
    result = await load_result(services, record, version)
    if fmt == ExportFormat.RTTM and result.versions.diarization is None:
        raise NotFoundError(
            f"task {task_id} was not diarized, so it has no speakers to export; submit the recording "
            "again with diarize=true"
        )
    return Response(
        content=render(result, fmt, task_id=task_id),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{task_id}.{fmt.value}"'},
    )


class ExportsController(Controller):
    """A task's transcript as a file."""

    path = "/tasks/{task_id:str}"
    tags = ("results",)

    @get(
        "/transcript.txt",
        summary="Transcript as plain text, one line per segment",
        media_type="text/plain",
        responses=error_responses(409),
    )
    async def txt(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[str],
        services: NamedDependency[Services],
        version: Version = None,
    ) -> Response[bytes]:
        """Plain text."""
        return await _export(request, services, task_id, version, ExportFormat.TXT)

    @get(
        "/transcript.srt",
        summary="Transcript as SubRip subtitles",
        media_type="application/x-subrip",
        responses=error_responses(409),
    )
    async def srt(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[str],
        services: NamedDependency[Services],
        version: Version = None,
    ) -> Response[bytes]:
        """SubRip."""
        return await _export(request, services, task_id, version, ExportFormat.SRT)

    @get(
        "/transcript.vtt",
        summary="Transcript as WebVTT subtitles",
        media_type="text/vtt",
        responses=error_responses(409),
    )
    async def vtt(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[str],
        services: NamedDependency[Services],
        version: Version = None,
    ) -> Response[bytes]:
        """WebVTT."""
        return await _export(request, services, task_id, version, ExportFormat.VTT)

    @get(
        "/transcript.json",
        summary="Transcript as JSON: text, language and timed segments",
        responses={
            200: ResponseSpec(
                data_container=TranscriptExport,
                description="The transcript of the result version",
                generate_examples=False,
            ),
            **error_responses(409),
        },
    )
    async def json(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[str],
        services: NamedDependency[Services],
        version: Version = None,
    ) -> Response[bytes]:
        """JSON."""
        return await _export(request, services, task_id, version, ExportFormat.JSON)

    @get(
        "/transcript.rttm",
        summary="Who spoke when, as RTTM (diarized tasks)",
        description=(
            "One `SPEAKER <task id> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>` line per "
            "diarization turn; speakers are labels, or names after a rename. Empty when no speech "
            "was found; 404 for a task that was not diarized."
        ),
        media_type="text/plain",
        responses=error_responses(404, 409),
    )
    async def rttm(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[str],
        services: NamedDependency[Services],
        version: Version = None,
    ) -> Response[bytes]:
        """RTTM."""
        return await _export(request, services, task_id, version, ExportFormat.RTTM)
