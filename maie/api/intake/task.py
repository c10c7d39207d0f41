"""Intake of one recording (POST /v1/process): the upload becomes a queued task, or nothing at all.

The upload is copied in chunks to ``MAIE_DATA_DIR/audio/<task_id>/raw.part``, probed with PyAV in
the decode sandbox and kept as ``raw.<ext>``; then the task record is stored and its first message
queued. A live session's recording (``/v1/stream``) is already written into its task folder; it is
probed and kept the same way. A recording given by URL (checked already) is not touched here: its
task starts with the fetch stage, which downloads it into that folder and probes it the same way.
Any failure on the way removes the folder and the record, so nothing half-made stays behind.
:func:`accept_task` mirrors :func:`maie.api.intake.batch.accept_batch`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread
import structlog

from maie.actor_table import FETCH, PREPROCESS
from maie.api.intake.idempotency import Accepted
from maie.api.intake.planning import planned_stages
from maie.api.intake.speakers import check_channels
from maie.api.intake.uploads import receive_upload, release_intake, remove_task_dir
from maie.api.intake.urls import SubmittedUrl
from maie.api.queries import load_task
from maie.errors import NotFoundError, StoreUnavailableError
from maie.pipeline.fetch import FETCHED_NAME
from maie.pipeline.preprocess import PreprocessOptions
from maie.pipeline.recording import keep_recording
from maie.schemas import ProcessAccepted, TaskRecord, TaskStatus

if TYPE_CHECKING:
    from litestar.datastructures import UploadFile

    from maie.api.admission import QueueSlots
    from maie.api.intake.idempotency import IdempotencyClaim
    from maie.api.services import Services
    from maie.schemas import AudioInfo, TaskRequest

__all__ = ["accept_task"]

log = structlog.get_logger(__name__)


async def accept_task(
    services: Services,
    *,
    tenant: str,
    upload: UploadFile | SubmittedUrl | Path,
    request: TaskRequest,
    request_id: str | None,
    idempotency: IdempotencyClaim,
    slots: QueueSlots,
    task_id: str | None = None,
) -> Accepted[ProcessAccepted]:
    """Turn the upload (or the URL) into a queued task, once per ``Idempotency-Key``.

    Args:
        services: The API's services.
        tenant: Whose task.
        upload: The uploaded ``file`` part, the checked ``url``, or a recording written into the
            task's folder already (``MAIE_DATA_DIR/audio/<task_id>/``, a live session's).
        request: The validated options of the task.
        request_id: The HTTP request's id, kept on the task and its messages.
        idempotency: The request's claim on its ``Idempotency-Key`` (a no-op without one).
        slots: The queue slot the request holds; storing the task frees it.
        task_id: The new task's id, when it was chosen before (a live session's folder is named
            after it); else a new one.

    Raises:
        UnsupportedMediaError, DecodeLimitError: the upload is not decodable audio (415).
        AudioTooShortError, AudioTooLongError: outside the duration limits (422).
        MonoInputError: ``diarization_backend=channels`` for a mono upload (422).
        StoreUnavailableError: Redis unreachable (503); nothing is left behind.
    """
    task_id = task_id or str(uuid.uuid4())

    async def create() -> Accepted[ProcessAccepted]:
        return await _create(
            services,
            task_id=task_id,
            tenant=tenant,
            upload=upload,
            request=request,
            request_id=request_id,
            slots=slots,
        )

    async def replay(earlier: str) -> Accepted[ProcessAccepted]:
        record = await load_task(services, earlier, tenant)
        log.info("task.idempotent_replay", task_id=earlier)
        return _accepted(earlier, record.status)

    return await idempotency.once(
        task_id, exists=lambda t: _exists(services, t, tenant), replay=replay, create=create
    )


def _accepted(task_id: str, status: TaskStatus) -> Accepted[ProcessAccepted]:
    status_url = f"/v1/status/{task_id}"
    return Accepted(ProcessAccepted(task_id=task_id, status=status, status_url=status_url), status_url)


async def _create(
    services: Services,
    *,
    task_id: str,
    tenant: str,
    upload: UploadFile | SubmittedUrl | Path,
    request: TaskRequest,
    request_id: str | None,
    slots: QueueSlots,
) -> Accepted[ProcessAccepted]:
    settings = services.settings
    structlog.contextvars.bind_contextvars(task_id=task_id)
    task_dir = settings.storage.data_dir / "audio" / task_id
    by_url = isinstance(upload, SubmittedUrl)
    created = False
    info: AudioInfo | None = None
    try:
        if isinstance(upload, SubmittedUrl):
            # The fetch stage writes the recording here; its probe renames it raw.<ext>.
            raw: Path = task_dir / FETCHED_NAME
        elif isinstance(upload, Path):
            raw, info = await anyio.to_thread.run_sync(
                keep_recording, upload, PreprocessOptions.from_settings(settings.audio), services.sandbox
            )
        else:
            raw, info = await receive_upload(
                upload,
                task_dir,
                PreprocessOptions.from_settings(settings.audio),
                services.sandbox,
                owner=services.intake_owner,
            )
            check_channels(request, info)
        record = TaskRecord(
            task_id=task_id,
            tenant=tenant,
            submitted_at=datetime.now(UTC),
            request=request,
            audio_path=str(raw),
            source=info,
            stages=planned_stages(request.features, fetch=by_url, diarize=bool(request.diarize)),
            request_id=request_id,
            fetch_url=upload.url if isinstance(upload, SubmittedUrl) else None,
        )
        await services.store.create(record, slots=slots.ids)
        slots.stored()
        created = True
        await anyio.to_thread.run_sync(release_intake, task_dir)
        first = FETCH if by_url else PREPROCESS
        await services.enqueue(first.message(task_id, request_id=request_id))
    except BaseException:
        # Nothing half-made stays behind: no folder, no record, no count in the queue depth.
        remove_task_dir(task_dir)
        if created:
            await _discard(services, task_id)
        raise
    await services.metrics.task_accepted()
    log.info(
        "task.accepted",
        features=[f.value for f in request.features],
        duration_s=info.duration_s if info else None,
        container=info.container if info else None,
        source_url=request.source_url,
    )
    return _accepted(task_id, TaskStatus.PENDING)


async def _discard(services: Services, task_id: str) -> None:
    try:
        await services.store.discard(task_id)
    except StoreUnavailableError:
        # Redis went away between storing the record and queueing it. The record cannot be
        # removed now; it is marked nowhere as queued, expires with the record TTL, and the
        # client was told 503, so no one waits on it.
        log.warning("task.discard_failed", reason="store unavailable")


async def _exists(services: Services, task_id: str, tenant: str) -> bool:
    try:
        await load_task(services, task_id, tenant)
    except NotFoundError:
        return False
    return True
