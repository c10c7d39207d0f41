"""GET /v1/status/{task_id}: cheap to poll (ETag, 304, Retry-After), tenant-isolated."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_304_NOT_MODIFIED

from maie.api.guards import tenant_of
from maie.errors import NotFoundError
from maie.schemas import ErrorBody, StatusResponse, TaskRecord

if TYPE_CHECKING:
    from litestar.di import NamedDependency
    from litestar.params import FromPath

    from maie.api.services import Services
    from maie.schemas import ResultVersion

__all__ = [
    "StatusController",
    "etag_of",
    "json_with_etag",
    "load_task",
    "not_modified",
    "status_body",
    "status_etag",
    "status_of",
]


async def load_task(services: Services, task_id: str, tenant: str) -> TaskRecord:
    """Return the task if it exists and belongs to ``tenant``.

    Raises:
        NotFoundError: for a malformed id, an unknown or expired task, or another tenant's task
            (which must be indistinguishable from an unknown one).
    """
    try:
        uuid.UUID(task_id)
    except ValueError:
        raise NotFoundError(f"task {task_id[:64]!r} not found") from None
    try:
        record = await services.store.get(task_id)
    except NotFoundError:
        raise NotFoundError(f"task {task_id} not found") from None
    if record.tenant != tenant:
        raise NotFoundError(f"task {task_id} not found")
    return record


def status_of(record: TaskRecord, result: ResultVersion | None) -> StatusResponse:
    """The public view of a task and its latest result."""
    return StatusResponse(
        task_id=record.task_id,
        status=record.status,
        submitted_at=record.submitted_at,
        started_at=record.started_at,
        completed_at=record.completed_at,
        features=record.request.features,
        template_id=record.request.template_id,
        asr_backend=record.request.asr_backend,
        stages=record.stages,
        versions=result.versions if result else None,
        metrics=result.metrics if result else None,
        results=result.results if result else None,
        result_version=record.result_version,
        error=record.error,
        error_code=record.error_code,
        failed_stage=record.failed_stage,
        batch_id=record.batch_id,
        webhooks=record.webhooks or None,
    )


def etag_of(body: bytes) -> str:
    """The (strong) ETag of a status body."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def status_etag(record: TaskRecord) -> str:
    """The ETag of a task's status, from its record alone.

    The status body is a function of the record and of the result version it names, and result
    versions never change, so the record decides the ETag: an unchanged task answers 304 (or sends
    no server-sent event) without reading its result, however long the transcript.
    """
    return etag_of(msgspec.json.encode(record))


def not_modified(request: Request[Any, Any, Any], etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag``."""
    return etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}


def json_with_etag(
    request: Request[Any, Any, Any], body: bytes, headers: dict[str, str] | None = None
) -> Response[Any]:
    """``body`` as JSON with its ETag, or an empty 304 when ``If-None-Match`` names that ETag."""
    etag = etag_of(body)
    headers = {"ETag": etag, **(headers or {})}
    if not_modified(request, etag):
        return Response(content=b"", status_code=HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)


async def status_body(services: Services, record: TaskRecord) -> bytes:
    """The JSON of GET /v1/status for ``record``, with its latest result."""
    result = None
    if record.result_version is not None:
        result = await services.store.get_result(record.task_id, record.result_version)
    return msgspec.json.encode(status_of(record, result))


class StatusController(Controller):
    """Task status."""

    path = "/status"
    tags = ("tasks",)

    @get(
        "/{task_id:str}",
        summary="Task status and, once complete, its results",
        responses={
            200: ResponseSpec(data_container=StatusResponse, description="The task"),
            304: ResponseSpec(data_container=None, description="Unchanged since the ETag in If-None-Match"),
            404: ResponseSpec(data_container=ErrorBody, description="No such task for this key"),
        },
    )
    async def status(
        self, request: Request[Any, Any, Any], task_id: FromPath[str], services: NamedDependency[Services]
    ) -> Response[Any]:
        """Return the task's status; ``If-None-Match`` with the last ``ETag`` answers 304."""
        record = await load_task(services, task_id, tenant_of(request))
        etag = status_etag(record)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if not record.status.terminal:
            headers["Retry-After"] = str(services.settings.server.status_retry_after_s)
        if not_modified(request, etag):
            return Response(content=b"", status_code=HTTP_304_NOT_MODIFIED, headers=headers)
        body = await status_body(services, record)
        return Response(content=body, media_type="application/json", headers=headers)
