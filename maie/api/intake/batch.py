"""Batch intake: the parts of POST /v1/batches become queued tasks, all of them or none.

Each part is copied into the batch folder (``MAIE_DATA_DIR/batches/<batch_id>``). A part that is
an archive (zip, tar, tar.gz/bz2/xz, judged by content) is unpacked there by :mod:`maie.archives`;
any other part is one recording. Every recording is then probed with PyAV exactly like a single
upload: what is not decodable audio, or is too short or too long, is skipped with the reason.
The recordings left each get a task folder and a task record; so does each URL that passed its
checks (:mod:`maie.api.intake.urls`), whose task starts with the fetch stage. The batch and all its
tasks are stored in one PostgreSQL transaction and then queued. Any failure on the way removes
every folder and record made so far, and the batch folder is always removed at the end. Until the
batch is stored, its folder and each task folder name the API process taking them in, so that what
an API killed meanwhile leaves is swept by the next (:mod:`maie.api.intake.uploads`).
"""

from __future__ import annotations

import functools
import tarfile
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import aiofiles
import anyio
import anyio.to_thread
import msgspec
import structlog

from maie.actor_table import FETCH, PREPROCESS
from maie.api.intake.idempotency import Accepted
from maie.api.intake.planning import planned_stages
from maie.api.intake.speakers import check_channels
from maie.api.intake.uploads import (
    BATCH_OWNER_NAME,
    CHUNK_BYTES,
    check_filename,
    mark_intake,
    release_intake,
    remove_task_dir,
    stored_name,
)
from maie.api.queries import load_batch
from maie.archives import ArchiveLimits, Unpacked, archive_kind, unpack
from maie.errors import (
    AudioTooLongError,
    AudioTooShortError,
    NotFoundError,
    StoreUnavailableError,
    UnprocessableError,
    UnsupportedMediaError,
)
from maie.pipeline.diarization import MonoInputError
from maie.pipeline.fetch import FETCHED_NAME
from maie.pipeline.preprocess import PreprocessOptions, check_duration, probe
from maie.schemas import AudioInfo, BatchAccepted, BatchRecord, SkippedMember, TaskRecord

if TYPE_CHECKING:
    from collections.abc import Sequence

    from litestar.datastructures import UploadFile

    from maie.api.admission import QueueSlots
    from maie.api.intake.idempotency import IdempotencyClaim
    from maie.api.intake.urls import SubmittedUrl
    from maie.api.services import Services
    from maie.config import Settings
    from maie.pipeline.sandbox import DecodeSandbox
    from maie.schemas import TaskRequest

__all__ = ["Recording", "accept_batch", "archive_limits", "take_in"]

log = structlog.get_logger(__name__)

_MIB = 1024 * 1024


class Recording(msgspec.Struct, frozen=True, kw_only=True):
    """A part or member that is usable audio: its label, where it is, what probing found."""

    name: str
    path: Path
    info: AudioInfo


def archive_limits(settings: Settings) -> ArchiveLimits:
    """The unpacking limits of ``settings``."""
    return ArchiveLimits(
        max_members=settings.batch.max_members,
        max_total_bytes=int(settings.batch.max_unpacked_mb * _MIB),
        max_member_bytes=int(settings.server.max_file_size_mb * _MIB),
        max_ratio=settings.batch.max_ratio,
    )


async def _save(upload: UploadFile, target: Path) -> None:
    async with aiofiles.open(target, "wb") as out:
        while chunk := await upload.read(CHUNK_BYTES):
            await out.write(chunk)


def _examine(
    members: Sequence[Unpacked], options: PreprocessOptions, sandbox: DecodeSandbox | None = None
) -> list[Recording | SkippedMember]:
    """Probe every member (blocking): a recording, or skipped with the reason.

    With ``sandbox``, each probe runs in a child process held to the decode limits, as for
    /v1/process, so a poison file in an archive is skipped without harming the API.
    """
    found: list[Recording | SkippedMember] = []
    for member in members:
        check = functools.partial(
            probe,
            member.path,
            max_duration_s=options.max_duration_s,
            decode_time_limit_s=options.decode_time_limit_s,
        )
        try:
            info = check() if sandbox is None else sandbox.run(check)
            check_duration(info, options)
        except (UnsupportedMediaError, AudioTooShortError, AudioTooLongError) as exc:
            member.path.unlink(missing_ok=True)
            found.append(SkippedMember(name=member.name, reason=exc.detail))
            continue
        found.append(Recording(name=member.name, path=member.path, info=info))
    return found


async def take_in(
    parts: Sequence[UploadFile], batch_dir: Path, settings: Settings, sandbox: DecodeSandbox | None = None
) -> tuple[list[Recording], list[SkippedMember]]:
    """Save, unpack and probe the parts of a batch upload inside ``batch_dir``.

    Raises:
        InvalidRequestError: a part with an unsafe filename (400), as for /v1/process.
        ArchiveLimitError: an archive over the batch limits (413).
    """
    limits = archive_limits(settings)
    members: list[Unpacked] = []
    skipped: list[SkippedMember] = []
    for n, part in enumerate(parts):
        name = check_filename(part.filename) or f"part-{n + 1}"
        staged = batch_dir / f"part-{n:04d}"
        await _save(part, staged)
        if await anyio.to_thread.run_sync(archive_kind, staged) is None:
            if (await anyio.Path(staged).stat()).st_size > limits.max_member_bytes:
                staged.unlink()
                limit = settings.server.max_file_size_mb
                reason = f"larger than one upload may be (MAIE_MAX_FILE_SIZE_MB={limit:g})"
                skipped.append(SkippedMember(name=name, reason=reason))
            else:
                members.append(Unpacked(name=name, path=staged))
            continue
        folder = batch_dir / f"part-{n:04d}.d"
        folder.mkdir()
        try:
            unpacked, refused = await anyio.to_thread.run_sync(unpack, staged, folder, limits)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
            skipped.append(SkippedMember(name=name, reason=f"damaged archive: {exc}"))
            continue
        finally:
            staged.unlink(missing_ok=True)
        prefix = f"{name}/" if len(parts) > 1 else ""
        members += [msgspec.structs.replace(m, name=prefix + m.name) for m in unpacked]
        skipped += [msgspec.structs.replace(s, name=prefix + s.name) for s in refused]
    options = PreprocessOptions.from_settings(settings.audio)
    recordings: list[Recording] = []
    for item in await anyio.to_thread.run_sync(_examine, members, options, sandbox):
        if isinstance(item, Recording):
            recordings.append(item)
        else:
            skipped.append(item)
    return recordings, skipped


def _splittable(
    recordings: list[Recording], request: TaskRequest, skipped: list[SkippedMember]
) -> list[Recording]:
    """The recordings the request's diarizer can split; the others are skipped with the reason.

    Only ``diarization_backend=channels`` refuses some (mono ones), as a single upload is refused.
    """
    kept = []
    for recording in recordings:
        try:
            check_channels(request, recording.info)
        except MonoInputError as exc:
            recording.path.unlink(missing_ok=True)
            skipped.append(SkippedMember(name=recording.name, reason=exc.detail))
            continue
        kept.append(recording)
    return kept


async def _check_room(count: int, skipped: list[SkippedMember], slots: QueueSlots) -> None:
    """Refuse a batch with nothing to do, or hold a queue slot for each of its ``count`` recordings.

    Raises:
        UnprocessableError: no usable recording, or more than ``MAIE_MAX_QUEUE_DEPTH`` of them.
        QueueFullError: the queue has no room for them now.
    """
    if not count:
        raise UnprocessableError(
            "no part of the upload is usable audio and no URL may be fetched; see extra for the "
            "reason of each",
            extra={"skipped": msgspec.to_builtins(skipped)},
        )
    server = slots.services.settings.server
    if count > server.max_queue_depth:
        raise UnprocessableError(
            f"the batch holds {count} recordings, more than MAIE_MAX_QUEUE_DEPTH={server.max_queue_depth} "
            "tasks may wait at once; split it into batches of at most that many",
            extra={"recordings": count, "max_queue_depth": server.max_queue_depth},
        )
    await slots.hold_total(count)


async def accept_batch(
    services: Services,
    *,
    tenant: str,
    parts: Sequence[UploadFile],
    request: TaskRequest,
    request_id: str | None,
    idempotency: IdempotencyClaim,
    slots: QueueSlots,
    urls: Sequence[SubmittedUrl] = (),
    refused_urls: Sequence[SkippedMember] = (),
) -> Accepted[BatchAccepted]:
    """Turn the parts and URLs into queued tasks of one new batch, once per ``Idempotency-Key``.

    Args:
        services: The API's services.
        tenant: Whose batch.
        parts: The uploaded ``file`` parts.
        urls: The recordings' URLs that passed the submit-time checks: one task each, after the
            parts' tasks.
        refused_urls: The URLs that did not, listed in ``skipped``.
        request: The validated options every task gets (its ``filename`` is replaced per task).
        request_id: The HTTP request's id, kept on every task of the batch and its messages.
        idempotency: The request's claim on its ``Idempotency-Key`` (a no-op without one).
        slots: The queue slots the request holds; one per recording is held before any is moved.

    Raises:
        UnprocessableError: when no part holds usable audio (the reasons are in ``extra``), or
            the batch is larger than the queue may ever hold.
        QueueFullError: when the queue has no room for the batch now (429).
        ArchiveLimitError: an archive over the limits (413).
        StoreUnavailableError: Redis unreachable (503); nothing is left behind.
    """
    batch_id = str(uuid.uuid4())
    structlog.contextvars.bind_contextvars(batch_id=batch_id)

    async def create() -> Accepted[BatchAccepted]:
        return await _create(
            services,
            batch_id=batch_id,
            tenant=tenant,
            parts=parts,
            urls=(urls, refused_urls),
            request=request,
            request_id=request_id,
            slots=slots,
        )

    async def replay(earlier: str) -> Accepted[BatchAccepted]:
        batch = await load_batch(services, earlier, tenant)
        return _accepted(batch)

    return await idempotency.once(
        batch_id, exists=lambda b: _exists(services, b, tenant), replay=replay, create=create
    )


def _accepted(batch: BatchRecord) -> Accepted[BatchAccepted]:
    status_url = f"/v1/batches/{batch.batch_id}"
    body = BatchAccepted(
        batch_id=batch.batch_id, task_ids=batch.task_ids, skipped=batch.skipped, status_url=status_url
    )
    return Accepted(body, status_url)


async def _create(
    services: Services,
    *,
    batch_id: str,
    tenant: str,
    parts: Sequence[UploadFile],
    urls: tuple[Sequence[SubmittedUrl], Sequence[SkippedMember]],
    request: TaskRequest,
    request_id: str | None,
    slots: QueueSlots,
) -> Accepted[BatchAccepted]:
    settings = services.settings
    links, refused = urls
    owner = services.intake_owner
    batch_dir = settings.storage.data_dir / "batches" / batch_id
    await anyio.Path(batch_dir).mkdir(parents=True)
    await mark_intake(batch_dir, owner, name=BATCH_OWNER_NAME)
    task_dirs: list[Path] = []
    batch: BatchRecord | None = None
    try:
        recordings, skipped = await take_in(parts, batch_dir, settings, services.sandbox)
        recordings = _splittable(recordings, request, skipped)
        skipped += refused
        await _check_room(len(recordings) + len(links), skipped, slots)
        now = datetime.now(UTC)
        records = []
        for recording in recordings:
            task_id = str(uuid.uuid4())
            task_dir = settings.storage.data_dir / "audio" / task_id
            await anyio.Path(task_dir).mkdir(parents=True)
            task_dirs.append(task_dir)
            await mark_intake(task_dir, owner)
            raw = task_dir / stored_name(recording.info)
            await anyio.Path(recording.path).rename(raw)
            records.append(
                TaskRecord(
                    task_id=task_id,
                    tenant=tenant,
                    submitted_at=now,
                    request=msgspec.structs.replace(request, filename=recording.name),
                    audio_path=str(raw),
                    source=recording.info,
                    stages=planned_stages(request.features, diarize=bool(request.diarize)),
                    batch_id=batch_id,
                    request_id=request_id,
                )
            )
        fetched: set[str] = set()  # the tasks of URLs, which start with the fetch stage
        for link in links:
            task_id = str(uuid.uuid4())
            task_dirs.append(settings.storage.data_dir / "audio" / task_id)
            fetched.add(task_id)
            records.append(
                TaskRecord(
                    task_id=task_id,
                    tenant=tenant,
                    submitted_at=now,
                    request=msgspec.structs.replace(request, filename=None, source_url=link.source_url),
                    audio_path=str(task_dirs[-1] / FETCHED_NAME),
                    stages=planned_stages(request.features, fetch=True, diarize=bool(request.diarize)),
                    batch_id=batch_id,
                    request_id=request_id,
                    fetch_url=link.url,
                )
            )
        batch = BatchRecord(
            batch_id=batch_id,
            tenant=tenant,
            created_at=now,
            request=request,
            task_ids=[r.task_id for r in records],
            skipped=skipped,
        )
        await services.store.create_batch(batch, records, slots=slots.ids)
        slots.stored()
        for task_dir in task_dirs:
            await anyio.to_thread.run_sync(release_intake, task_dir)
        await services.enqueue(
            *(
                (FETCH if t in fetched else PREPROCESS).message(t, request_id=request_id)
                for t in batch.task_ids
            )
        )
    except BaseException:
        for task_dir in task_dirs:
            remove_task_dir(task_dir)
        if batch is not None:
            await _discard(services, batch)
        raise
    finally:
        await anyio.to_thread.run_sync(remove_task_dir, batch_dir)
    await services.metrics.task_accepted(len(batch.task_ids))
    log.info("batch.accepted", batch_id=batch_id, tasks=len(batch.task_ids), skipped=len(skipped))
    return _accepted(batch)


async def _exists(services: Services, batch_id: str, tenant: str) -> bool:
    try:
        await load_batch(services, batch_id, tenant)
    except NotFoundError:
        return False
    return True


async def _discard(services: Services, batch: BatchRecord) -> None:
    try:
        await services.store.discard_batch(batch)
    except StoreUnavailableError:
        # As for single tasks: the records expire with the TTL, and the client was told 503.
        log.warning("batch.discard_failed", reason="store unavailable")
