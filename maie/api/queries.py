"""What routes read: a tenant's task, batch or result version, and the public views of a task.

Every read names the tenant: another tenant's task or batch is answered exactly like an unknown one
(404), so ids cannot be probed. The status body and its ETag live here too, because GET /v1/status
and its server-sent events must answer the same bytes for the same task.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import msgspec

from maie.api.etags import etag_of
from maie.api.precision import public_result
from maie.errors import NotFoundError
from maie.schemas import StatusResponse, TaskSummary

if TYPE_CHECKING:
    from maie.api.services import Services
    from maie.schemas import BatchRecord, ResultVersion, TaskRecord

__all__ = [
    "load_batch",
    "load_result",
    "load_task",
    "status_body",
    "status_etag",
    "status_of",
    "summary_of",
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


async def load_batch(services: Services, batch_id: str, tenant: str) -> BatchRecord:
    """Return the batch if it exists and belongs to ``tenant``.

    Raises:
        NotFoundError: for a malformed id, an unknown or expired batch, or another tenant's.
    """
    try:
        uuid.UUID(batch_id)
        batch = await services.store.get_batch(batch_id)
    except (ValueError, NotFoundError):
        raise NotFoundError(f"batch {batch_id[:64]!r} not found") from None
    if batch.tenant != tenant:
        raise NotFoundError(f"batch {batch_id[:64]!r} not found")
    return batch


async def load_result(services: Services, record: TaskRecord, version: int | None) -> ResultVersion:
    """Version ``version`` of the task's result (the latest when None), as clients read it.

    Raises:
        NotFoundError: if the task has no such version.
    """
    number = record.result_version if version is None else version
    if number is None or number < 1 or (record.result_version is not None and number > record.result_version):
        latest = record.result_version
        raise NotFoundError(
            f"task {record.task_id} has no result version {version}"
            + (f"; its versions are 1 to {latest}" if latest else f"; it is {record.status.value}")
        )
    result = await services.store.get_result(record.task_id, number)
    if result is None:
        raise NotFoundError(f"result version {number} of task {record.task_id} is gone (expired)")
    return public_result(result)


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
        source_url=record.request.source_url,
        model=record.request.model,
        filename=record.request.filename,
    )


def status_etag(record: TaskRecord) -> str:
    """The ETag of a task's status, from its record alone.

    The status body is a function of the record and of the result version it names, and result
    versions never change, so the record decides the ETag: an unchanged task answers 304 (or sends
    no server-sent event) without reading its result, however long the transcript.
    """
    return etag_of(msgspec.json.encode(record))


async def status_body(services: Services, record: TaskRecord, etag: str) -> bytes:
    """The JSON of GET /v1/status for ``record`` (whose :func:`status_etag` is ``etag``).

    A task without a result is encoded from its record alone. One with a result answers the body
    built before for the same ETag when :class:`~maie.api.status_bodies.StatusBodies` still has
    it; otherwise its result is read, and the body kept for the next poll.
    """
    if record.result_version is None:
        return msgspec.json.encode(status_of(record, None))
    body = services.status_bodies.get(record.task_id, etag)
    if body is None:
        result = await services.store.get_result(record.task_id, record.result_version)
        body = msgspec.json.encode(status_of(record, None if result is None else public_result(result)))
        if result is not None:  # a result gone (expired) is not worth keeping an answer for
            services.status_bodies.put(record.task_id, etag, body)
    return body


def summary_of(record: TaskRecord) -> TaskSummary:
    """A task as lists show it (GET /v1/tasks, a batch's tasks)."""
    return TaskSummary(
        task_id=record.task_id,
        status=record.status,
        submitted_at=record.submitted_at,
        completed_at=record.completed_at,
        features=record.request.features,
        template_id=record.request.template_id,
        filename=record.request.filename,
        batch_id=record.batch_id,
        result_version=record.result_version,
        error_code=record.error_code,
        source_url=record.request.source_url,
    )
