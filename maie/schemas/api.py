"""Request and response bodies of the HTTP API that are not stored records."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from maie.schemas.base import Feature, Frozen, TaskStatus
from maie.schemas.results import Metrics, Results, Versions
from maie.schemas.tasks import SkippedMember, StageRecord, WebhookDelivery

__all__ = [
    "MAX_SPEAKER_NAMES",
    "MAX_SPEAKER_NAME_LENGTH",
    "BatchAccepted",
    "BatchStatus",
    "ErrorBody",
    "HealthResponse",
    "ModelInfo",
    "ModelVariant",
    "ModelsResponse",
    "ProcessAccepted",
    "ResultVersionInfo",
    "ResultVersionList",
    "SpeakerNames",
    "StatusResponse",
    "SummaryAccepted",
    "SummaryRequest",
    "TaskPage",
    "TaskSummary",
    "TemplateInfo",
    "TemplatesResponse",
]


class SummaryRequest(Frozen, frozen=True, kw_only=True):
    """Body of POST /v1/tasks/{id}/summaries."""

    #: Template to summarize the stored transcript with (see GET /v1/templates).
    template_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class SummaryAccepted(Frozen, frozen=True, kw_only=True):
    """Answer to POST /v1/tasks/{id}/summaries: the job is queued."""

    task_id: str
    job_id: str
    template_id: str
    status_url: str
    results_url: str


class ProcessAccepted(Frozen, frozen=True, kw_only=True):
    """Answer to an accepted submission."""

    task_id: str
    status: TaskStatus
    status_url: str


class StatusResponse(Frozen, frozen=True, kw_only=True):
    """Answer to GET /v1/status/{task_id}."""

    task_id: str
    status: TaskStatus
    submitted_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    features: list[Feature]
    template_id: str | None = None
    asr_backend: str
    stages: list[StageRecord]
    versions: Versions | None = None
    metrics: Metrics | None = None
    results: Results | None = None
    result_version: int | None = None
    error: str | None = None
    error_code: str | None = None
    failed_stage: str | None = None
    batch_id: str | None = None
    webhooks: list[WebhookDelivery] | None = None
    #: The recording's URL without credentials, for a recording given by ``url``.
    source_url: str | None = None
    #: The model variant asked for (backends with variants), the default one when none was named.
    model: str | None = None
    #: The uploaded file's name (an archive member's path for a batch task), as sent.
    filename: str | None = None


class ModelVariant(Frozen, frozen=True, kw_only=True):
    """One model variant of an ASR backend (a request picks it with ``model=<name>``)."""

    name: str
    #: The folder or model name it loads.
    model: str
    #: Whether requests that name no ``model`` get it.
    default: bool = False
    available: bool
    unavailable_reason: str | None = None
    #: Bytes of its weights on disk; ``None`` when they are not on disk yet.
    size_bytes: int | None = None
    #: Whether a worker that sent a heartbeat lately holds it in memory.
    loaded: bool = False
    #: How many such workers do.
    loaded_workers: int = 0


class ModelInfo(Frozen, frozen=True, kw_only=True):
    """One ASR or diarization backend as /v1/models reports it."""

    backend_id: str
    name: str
    default_variant: str
    description: str
    capabilities: list[str]
    available: bool
    unavailable_reason: str | None = None
    device: str
    compute_type: str
    languages: list[str] | None = None
    #: Bytes of the default model's weights on disk, where the backend knows them.
    size_bytes: int | None = None
    #: The configured model variants, default first (``None`` for backends without variants).
    variants: list[ModelVariant] | None = None


class ModelsResponse(Frozen, frozen=True, kw_only=True):
    """Answer to GET /v1/models."""

    #: The ASR backends.
    models: list[ModelInfo]
    #: The diarization backends (``diarization_backend``), in the same shape.
    diarizers: list[ModelInfo] = msgspec.field(default_factory=list)


#: Most speakers one rename may name (as many as a request may ask to find).
MAX_SPEAKER_NAMES = 32
#: Longest name a speaker may be given, in characters.
MAX_SPEAKER_NAME_LENGTH = 200


class SpeakerNames(Frozen, frozen=True, kw_only=True):
    """Body of PATCH /v1/tasks/{id}/speakers: names for some of the task's speakers.

    The limits (1 to :data:`MAX_SPEAKER_NAMES` names, each one line of at most
    :data:`MAX_SPEAKER_NAME_LENGTH` characters) are checked by the handler, after the task is
    found: the OpenAPI schema cannot state them for a map's values, and a request its schema
    allows must not be refused as malformed (400).
    """

    #: Label (``SPEAKER_00``) to name (``Alice``); speakers left out keep their current name.
    names: dict[str, str]


class TemplateInfo(Frozen, frozen=True, kw_only=True):
    """One summary template as listed by /v1/templates."""

    template_id: str
    name: str
    description: str
    schema_url: str


class TemplatesResponse(Frozen, frozen=True, kw_only=True):
    """Answer to GET /v1/templates."""

    templates: list[TemplateInfo]


class HealthResponse(Frozen, frozen=True, kw_only=True):
    """Answer to GET /health."""

    status: str
    version: str
    redis_connected: bool
    #: Whether PostgreSQL, the system of record, answers.
    database_connected: bool
    queue_depth: int | None = None
    worker_active: bool


class ErrorBody(Frozen, frozen=True, kw_only=True):
    """Every error response body."""

    detail: str
    status_code: int
    extra: dict[str, Any] | list[Any] | None = None


class ResultVersionInfo(Frozen, frozen=True, kw_only=True):
    """One entry of GET /v1/tasks/{id}/results."""

    version: int
    created_at: datetime
    kind: str
    template_id: str | None = None


class ResultVersionList(Frozen, frozen=True, kw_only=True):
    """Answer to GET /v1/tasks/{id}/results, oldest first."""

    task_id: str
    latest: int | None
    versions: list[ResultVersionInfo]


class TaskSummary(Frozen, frozen=True, kw_only=True):
    """A task as lists show it (GET /v1/tasks, GET /v1/batches/{id})."""

    task_id: str
    status: TaskStatus
    submitted_at: datetime
    completed_at: datetime | None = None
    features: list[Feature]
    template_id: str | None = None
    filename: str | None = None
    batch_id: str | None = None
    result_version: int | None = None
    error_code: str | None = None
    #: The recording's URL without credentials, for a recording given by ``url``.
    source_url: str | None = None


class TaskPage(Frozen, frozen=True, kw_only=True):
    """Answer to GET /v1/tasks: newest first; pass ``next_cursor`` back for the next page."""

    tasks: list[TaskSummary]
    next_cursor: str | None


class BatchAccepted(Frozen, frozen=True, kw_only=True):
    """Answer to an accepted POST /v1/batches."""

    batch_id: str
    task_ids: list[str]
    skipped: list[SkippedMember]
    status_url: str


class BatchStatus(Frozen, frozen=True, kw_only=True):
    """Answer to GET /v1/batches/{id}: counts by status and every task."""

    batch_id: str
    created_at: datetime
    total: int
    counts: dict[str, int]
    finished: bool
    tasks: list[TaskSummary]
    skipped: list[SkippedMember]
