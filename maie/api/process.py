"""POST /v1/process: accept an upload and a choice of features, start the pipeline."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
import structlog
from litestar import Controller, Request, Response, post
from litestar.datastructures import UploadFile  # noqa: TC002 - Litestar reads the form's hints at runtime
from litestar.enums import RequestEncodingType
from litestar.params import Body

from maie.api.admission import AdmissionMiddleware, queue_slot_guard, slots_of
from maie.api.asr_request import check_asr_options
from maie.api.guards import tenant_of
from maie.api.idempotency import IdempotencyClaim
from maie.api.openapi import error_responses
from maie.api.rate_limit import submission_rate_limit_guard
from maie.api.request_id import request_id_of
from maie.api.status import load_task
from maie.api.uploads import check_filename, receive_upload, remove_task_dir
from maie.broker import QUEUE_CPU, stage_message
from maie.errors import (
    BackendUnavailableError,
    InvalidRequestError,
    NotFoundError,
    StoreUnavailableError,
    UnprocessableError,
)
from maie.pipeline.asr.registry import REGISTRY
from maie.pipeline.preprocess import PreprocessOptions
from maie.schemas import (
    Feature,
    ProcessAccepted,
    StageName,
    StageRecord,
    TaskRecord,
    TaskRequest,
    TaskStatus,
)
from maie.webhooks.targets import check_callback

if TYPE_CHECKING:
    from litestar.di import NamedDependency

    from maie.api.services import Services
    from maie.config import Settings

__all__ = [
    "DEFAULT_FEATURES",
    "ProcessController",
    "ProcessForm",
    "TaskOptions",
    "parse_features",
    "planned_stages",
    "validate_request",
]

log = structlog.get_logger(__name__)

#: Features of a request that names none.
DEFAULT_FEATURES = (Feature.CLEAN_TRANSCRIPT, Feature.SUMMARY)
#: Features that need an LLM backend.
LLM_FEATURES = frozenset({Feature.CLEAN_TRANSCRIPT, Feature.SUMMARY, Feature.ENHANCEMENT_METRICS})
#: ISO 639-1 (two letters) or the few three-letter codes Whisper knows (haw, yue).
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")


@dataclass(kw_only=True)
class TaskOptions:
    """The options of a submission, shared by POST /v1/process and POST /v1/batches."""

    #: Repeated field or comma-separated: raw_transcript, clean_transcript, summary, enhancement_metrics.
    features: list[str] | None = None
    #: Summary template; required when ``summary`` is asked for.
    template_id: str | None = None
    #: ASR backend id (see GET /v1/models); default from MAIE_ASR_BACKEND.
    asr_backend: str | None = None
    #: ISO 639-1 code of the spoken language; default: detect.
    language: str | None = None
    #: Word-level timestamps in segments.
    word_timestamps: bool | None = None
    #: Webhook called when the task finishes.
    callback_url: str | None = None
    #: Words or phrases the ASR should favour (names, jargon); backends with ``custom_vocabulary``.
    hotwords: str | None = None
    #: Text that primes the ASR (spelling, style); backends with ``custom_vocabulary``.
    initial_prompt: str | None = None
    #: Beam width of the ASR decoder, 1-20; backends with ``beam_size``.
    beam_size: int | None = None


@dataclass(kw_only=True)
class ProcessForm(TaskOptions):
    """Fields of POST /v1/process (multipart/form-data)."""

    #: The recording: any container PyAV can demux with at least one audio stream.
    file: UploadFile


def parse_features(values: list[str] | None) -> list[Feature]:
    """Flatten repeated and comma-separated feature fields, in order, without duplicates.

    Raises:
        UnprocessableError: naming any unknown feature and the known ones.
    """
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    if not names:
        return list(DEFAULT_FEATURES)
    known = {f.value for f in Feature}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnprocessableError(
            f"unknown feature(s) {', '.join(map(repr, unknown))}; known features: {', '.join(sorted(known))}"
        )
    return list(dict.fromkeys(Feature(n) for n in names))


def planned_stages(features: list[Feature]) -> list[StageRecord]:
    """The stages a task asking for ``features`` runs, all pending."""
    stages = [StageRecord(name=StageName.PREPROCESS), StageRecord(name=StageName.TRANSCRIBE)]
    if {Feature.CLEAN_TRANSCRIPT, Feature.ENHANCEMENT_METRICS} & set(features):
        stages.append(StageRecord(name=StageName.ENHANCE))
    if Feature.SUMMARY in features:
        stages.append(StageRecord(name=StageName.SUMMARIZE))
    return stages


async def validate_request(form: TaskOptions, services: Services, *, filename: str | None) -> TaskRequest:
    """Check every field (and the upload's ``filename``) before any file is written.

    Raises:
        InvalidRequestError: a malformed value (400).
        UnprocessableError: a well-formed request MAIE cannot serve (422).
    """
    settings: Settings = services.settings
    features = parse_features(form.features)
    needs_llm = sorted(f.value for f in LLM_FEATURES.intersection(features))
    if needs_llm and settings.llm.backend == "none":
        raise UnprocessableError(
            f"feature(s) {', '.join(needs_llm)} need an LLM backend and none is configured "
            "(MAIE_LLM_BACKEND=none); ask for features=raw_transcript, or configure an LLM backend "
            "as docs/configuration.md explains",
            extra={"features": needs_llm},
        )
    if Feature.SUMMARY in features:
        if not form.template_id:
            raise UnprocessableError("feature 'summary' needs a template_id; see GET /v1/templates")
        try:
            services.templates.get(form.template_id)
        except NotFoundError as exc:
            raise UnprocessableError(exc.detail) from exc
    backend = form.asr_backend or settings.asr.backend
    if backend not in REGISTRY.ids():
        raise BackendUnavailableError(
            f"unknown asr_backend {backend!r}; known backends: {', '.join(sorted(REGISTRY.ids()))}"
        )
    # Only the chosen backend is checked: probing the others (torch imports) would slow every submit.
    model = await anyio.to_thread.run_sync(REGISTRY.info, backend, settings)
    if not model.available:
        raise BackendUnavailableError(
            f"asr_backend {backend!r} is unavailable on this server: {model.unavailable_reason}"
        )
    language = form.language.strip().lower() if form.language else None
    if language and not LANGUAGE_CODE.match(language):
        raise InvalidRequestError(f"language must be an ISO 639-1 code such as 'en', got {form.language!r}")
    callback_url = await check_callback(form.callback_url, settings) if form.callback_url else None
    asr_options = check_asr_options(
        model,
        language=language,
        word_timestamps=form.word_timestamps,
        hotwords=form.hotwords,
        initial_prompt=form.initial_prompt,
        beam_size=form.beam_size,
    )
    return TaskRequest(
        features=features,
        template_id=form.template_id if Feature.SUMMARY in features else None,
        asr_backend=backend,
        language=language,
        word_timestamps=form.word_timestamps,
        callback_url=callback_url,
        filename=check_filename(filename),
        hotwords=asr_options.hotwords,
        initial_prompt=asr_options.initial_prompt,
        beam_size=asr_options.beam_size,
    )


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


async def _replay(services: Services, task_id: str, tenant: str) -> Response[ProcessAccepted]:
    """The answer to a repeated Idempotency-Key: the first request's task, as it is now."""
    record = await load_task(services, task_id, tenant)
    log.info("task.idempotent_replay", task_id=task_id)
    status_url = f"/v1/status/{task_id}"
    return Response(
        ProcessAccepted(task_id=task_id, status=record.status, status_url=status_url),
        status_code=202,
        headers={"Location": status_url, "Idempotent-Replayed": "true"},
    )


class ProcessController(Controller):
    """Submissions."""

    path = "/process"
    tags = ("tasks",)

    @post(
        "/",
        status_code=202,
        guards=[submission_rate_limit_guard, queue_slot_guard],
        middleware=[AdmissionMiddleware()],
        responses=error_responses(400, 409, 413, 415, 422),
        summary="Submit a recording",
        description="Streams the upload to disk, checks it is decodable audio, and queues the pipeline.",
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[ProcessForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        services: NamedDependency[Services],
    ) -> Response[ProcessAccepted]:
        """Accept a recording and start its pipeline."""
        task_request = await validate_request(data, services, filename=data.file.filename)
        settings = services.settings
        task_id = str(uuid.uuid4())
        tenant = tenant_of(request)
        idempotency = IdempotencyClaim.of(request, services.store, tenant, kind="task", request=task_request)
        earlier = await idempotency.claim(task_id, exists=lambda t: _exists(services, t, tenant))
        if earlier is not None:
            return await _replay(services, earlier, tenant)
        structlog.contextvars.bind_contextvars(task_id=task_id)
        task_dir = settings.storage.data_dir / "audio" / task_id
        created = False
        try:
            raw, info = await receive_upload(
                data.file, task_dir, PreprocessOptions.from_settings(settings.audio), services.sandbox
            )
            record = TaskRecord(
                task_id=task_id,
                tenant=tenant,
                submitted_at=datetime.now(UTC),
                request=task_request,
                audio_path=str(raw),
                source=info,
                stages=planned_stages(task_request.features),
                request_id=request_id_of(request),
            )
            slots = slots_of(request)
            await services.store.create(record, slots=slots.ids)
            slots.stored()
            created = True
            await services.enqueue(
                stage_message(StageName.PREPROCESS.value, QUEUE_CPU, task_id, request_id=record.request_id)
            )
        except BaseException:
            # Nothing half-made stays behind: no folder, no record, no count in the queue depth.
            remove_task_dir(task_dir)
            if created:
                await _discard(services, task_id)
            await idempotency.release()
            raise
        await services.metrics.task_accepted()
        await idempotency.commit()
        log.info(
            "task.accepted",
            features=[f.value for f in task_request.features],
            duration_s=info.duration_s,
            container=info.container,
        )
        status_url = f"/v1/status/{task_id}"
        return Response(
            ProcessAccepted(task_id=task_id, status=TaskStatus.PENDING, status_url=status_url),
            status_code=202,
            headers={"Location": status_url},
        )
