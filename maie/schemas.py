"""The public contract as msgspec Structs.

The same Structs encode API responses and the records MAIE keeps in Redis, so the API and the
worker cannot drift apart. Field names follow DESIGN.md §2.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

import msgspec

__all__ = [
    "AsrArtifact",
    "AsrVersion",
    "AudioInfo",
    "Base",
    "BatchAccepted",
    "BatchRecord",
    "BatchStatus",
    "EnhanceArtifact",
    "EnhancementMetrics",
    "ErrorBody",
    "Feature",
    "Frozen",
    "HealthResponse",
    "LlmVersion",
    "MapReduceInfo",
    "Metrics",
    "ModelInfo",
    "ModelsResponse",
    "PreprocessArtifact",
    "ProcessAccepted",
    "ResultVersion",
    "ResultVersionInfo",
    "ResultVersionList",
    "Results",
    "Segment",
    "SkippedMember",
    "StageName",
    "StageRecord",
    "StageState",
    "StatusResponse",
    "SummaryAccepted",
    "SummaryArtifact",
    "SummaryRequest",
    "TaskPage",
    "TaskRecord",
    "TaskRequest",
    "TaskStatus",
    "TaskSummary",
    "TemplateInfo",
    "TemplateVersion",
    "TemplatesResponse",
    "Versions",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookState",
    "Word",
]

#: Seconds, never negative.
Seconds = Annotated[float, msgspec.Meta(ge=0)]
#: A probability or a ratio in [0, 1].
Unit = Annotated[float, msgspec.Meta(ge=0, le=1)]


class Base(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of mutable contract Structs (records the worker updates): defaults left out of the encoding.

    msgspec applies ``kw_only`` to the fields a class defines itself, so each subclass repeats it.
    """


class Frozen(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of immutable contract Structs: API answers, artifacts, result versions."""


class TaskStatus(enum.StrEnum):
    """Where a task is. It only ever moves forward, in declaration order."""

    PENDING = "PENDING"
    PREPROCESSING = "PREPROCESSING"
    PROCESSING_ASR = "PROCESSING_ASR"
    PROCESSING_LLM = "PROCESSING_LLM"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        """Whether the task will change no more."""
        return self in (TaskStatus.COMPLETE, TaskStatus.FAILED)

    @property
    def rank(self) -> int:
        """Position in the forward-only order (COMPLETE and FAILED share the last rank)."""
        return min(list(TaskStatus).index(self), 4)


class Feature(enum.StrEnum):
    """What a client can ask a task to produce."""

    RAW_TRANSCRIPT = "raw_transcript"
    CLEAN_TRANSCRIPT = "clean_transcript"
    SUMMARY = "summary"
    ENHANCEMENT_METRICS = "enhancement_metrics"


class StageName(enum.StrEnum):
    """Pipeline stages, one actor each, in pipeline order."""

    PREPROCESS = "preprocess"
    TRANSCRIBE = "transcribe"
    ENHANCE = "enhance"
    SUMMARIZE = "summarize"


class StageState(enum.StrEnum):
    """Status of one stage of one task."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class StageRecord(Base, kw_only=True):
    """Status, timing and attempts of one stage."""

    name: StageName
    status: StageState = StageState.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: Seconds | None = None
    attempts: int = 0
    error: str | None = None
    #: Set on the stages of a re-summarization job (POST /v1/tasks/{id}/summaries).
    job_id: str | None = None
    #: Template of a re-summarization job.
    template_id: str | None = None
    #: The result version a re-summarization job produced.
    result_version: int | None = None


class Word(Frozen, frozen=True, kw_only=True):
    """One word with its time span."""

    start: Seconds
    end: Seconds
    word: str
    probability: Unit


class Segment(Frozen, frozen=True, kw_only=True):
    """One transcript segment."""

    id: int
    start: Seconds
    end: Seconds
    text: str
    confidence: Unit | None = None
    words: list[Word] | None = None


class AudioInfo(Frozen, frozen=True, kw_only=True):
    """What probing an audio file found."""

    container: str
    codec: str
    duration_s: Seconds
    channels: int
    sample_rate: int
    bit_rate: int | None = None


class PreprocessArtifact(Frozen, frozen=True, kw_only=True):
    """Output of the preprocess stage: the probed input and the normalised 16 kHz mono WAV."""

    source: AudioInfo
    wav_path: str
    duration_s: Seconds
    sample_rate: int = 16000


class AsrVersion(Frozen, frozen=True, kw_only=True):
    """Which ASR model and decoding options produced a transcript."""

    name: str
    model_variant: str
    model_path: str
    checkpoint_hash: str
    compute_type: str
    device: str
    decoding_params: dict[str, Any] = msgspec.field(default_factory=dict)
    fallback: str | None = None
    #: Whether this model writes punctuation and casing itself (then enhancement is skipped).
    native_punctuation: bool = False


class AsrArtifact(Frozen, frozen=True, kw_only=True):
    """Output of the transcribe stage."""

    text: str
    segments: list[Segment]
    language: str | None
    language_probability: Unit | None = None
    duration_s: Seconds
    vad_coverage: Unit | None = None
    confidence_avg: Unit | None = None
    processing_time_s: Seconds
    version: AsrVersion


class TemplateVersion(Frozen, frozen=True, kw_only=True):
    """Which template (schema and prompt, by hash) shaped a summary."""

    template_id: str
    schema_sha256: str
    prompt_sha256: str


class MapReduceInfo(Frozen, frozen=True, kw_only=True):
    """How a transcript too long for one request was summarised: parts, then merges."""

    #: Transcript parts summarised separately (the map step).
    parts: int
    #: Merge rounds until one summary was left (the reduce step); 1 when all parts fit one merge.
    reduce_rounds: int
    #: sha256 of the merge prompt.
    reduce_prompt_sha256: str


class LlmVersion(Frozen, frozen=True, kw_only=True):
    """Which LLM, prompt and decoding produced an enhanced transcript or a summary."""

    #: Backend id: ``vllm`` or ``openai``.
    name: str
    #: Model name or folder as configured.
    model: str
    #: sha256 of the weights where MAIE can read them (``vllm``); ``null`` behind an HTTP server.
    #: Always present, like the other fields of the contract without a default.
    checkpoint_hash: str | None
    #: Quantization method (``awq``, ``fp8``...) or ``null`` for the checkpoint's own precision.
    quantization: str | None
    #: ``enhancement`` or ``summary``.
    task: str
    #: Chat template: a shipped asset name, a file, or ``model default`` / ``server default``.
    chat_template: str | None
    #: Whether the model was allowed to think before answering.
    thinking: bool
    #: Resolved generation parameters sent with every request of the task.
    decoding_params: dict[str, Any] = msgspec.field(default_factory=dict)
    #: Where each decoding parameter came from: ``runtime``, ``env``, ``model`` or ``library``.
    decoding_sources: dict[str, str] = msgspec.field(default_factory=dict)
    #: How output was constrained, e.g. ``json_schema`` (``None`` for free text).
    structured_output: str | None = None
    #: sha256 of the task prompt MAIE sent (the enhancement prompt; templates record theirs apart).
    prompt_sha256: str | None = None
    #: The OpenAI-compatible server, for the ``openai`` backend.
    base_url: str | None = None
    #: Transcript split for a long recording (summaries only).
    map_reduce: MapReduceInfo | None = None


class Versions(Frozen, frozen=True, kw_only=True):
    """Everything needed to say what produced a result."""

    pipeline_version: str
    asr_backend: AsrVersion | None = None
    enhancement_llm: LlmVersion | None = None
    summarization_llm: LlmVersion | None = None
    template: TemplateVersion | None = None


class EnhancementMetrics(Frozen, frozen=True, kw_only=True):
    """How much transcript enhancement changed the raw transcript."""

    #: Character edit distance between raw and clean transcript over the raw length (rapidfuzz).
    edit_rate: Annotated[float, msgspec.Meta(ge=0)]
    #: Word edit distance over the raw word count.
    word_edit_rate: Annotated[float, msgspec.Meta(ge=0)]
    #: Segments in the transcript.
    segments: int
    #: Segments whose text the model changed.
    segments_changed: int = 0
    #: Segments whose cleaned text drifted too far from what was said, so the raw text was kept.
    segments_reverted: int = 0
    #: Requests the transcript was split into.
    chunks: int = 0
    #: Chunks whose answer stayed unusable after retries, so their raw text was kept.
    chunks_failed: int = 0
    #: True when enhancement did not run (the ASR model punctuates itself).
    skipped: bool = False
    #: Why it was skipped.
    reason: str | None = None


class EnhanceArtifact(Frozen, frozen=True, kw_only=True):
    """Output of the enhance stage: the cleaned transcript, segment by segment."""

    text: str
    segments: list[Segment]
    metrics: EnhancementMetrics
    #: ``None`` when enhancement was skipped.
    version: LlmVersion | None = None


class SummaryArtifact(Frozen, frozen=True, kw_only=True):
    """Output of the summarize stage: a summary that validated against its template's schema."""

    summary: dict[str, Any]
    template: TemplateVersion
    version: LlmVersion
    #: Requests sent, retries included.
    requests: int
    #: Answers refused (invalid JSON, schema violations, truncation) and asked again.
    retries: int = 0
    processing_time_s: Seconds


class Metrics(Frozen, frozen=True, kw_only=True):
    """Measurements of one pipeline run."""

    input_duration_seconds: Seconds
    processing_time_seconds: Seconds
    rtf: Seconds
    vad_coverage: Unit | None = None
    asr_confidence_avg: Unit | None = None
    edit_rate_cleaning: float | None = None


class Results(Frozen, frozen=True, kw_only=True):
    """What a task produced, limited to the features it asked for."""

    raw_transcript: str | None = None
    clean_transcript: str | None = None
    summary: dict[str, Any] | None = None
    enhancement_metrics: EnhancementMetrics | None = None
    language: str | None = None
    segments: list[Segment] | None = None


class ResultVersion(Frozen, frozen=True, kw_only=True):
    """One immutable result of a task: a pipeline run or a re-summarization."""

    version: int
    created_at: datetime
    kind: str
    results: Results
    versions: Versions
    metrics: Metrics | None = None
    template_id: str | None = None


class TaskRequest(Frozen, frozen=True, kw_only=True):
    """What the client asked for, as validated at submit time."""

    features: list[Feature]
    template_id: str | None = None
    asr_backend: str
    language: str | None = None
    word_timestamps: bool | None = None
    callback_url: str | None = None
    filename: str | None = None
    #: Words the ASR should favour (Whisper hotwords); ``None`` uses the server's.
    hotwords: str | None = None
    #: Text that primes the ASR's first window; ``None`` uses the server's.
    initial_prompt: str | None = None
    #: Beam width of the ASR decoder; ``None`` uses the server's.
    beam_size: int | None = None


class TaskRecord(Base, kw_only=True):
    """The task as MAIE keeps it in Redis."""

    task_id: str
    tenant: str
    status: TaskStatus = TaskStatus.PENDING
    submitted_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    request: TaskRequest
    audio_path: str
    source: AudioInfo | None = None
    stages: list[StageRecord]
    result_version: int | None = None
    error: str | None = None
    error_code: str | None = None
    failed_stage: str | None = None
    request_id: str | None = None
    batch_id: str | None = None
    webhooks: list[WebhookDelivery] = msgspec.field(default_factory=list)

    def stage(self, name: StageName) -> StageRecord:
        """Return the record of stage ``name``.

        Raises:
            KeyError: if the task does not run that stage.
        """
        for record in self.stages:
            if record.name == name and record.job_id is None:
                return record
        raise KeyError(name)

    def job(self, job_id: str) -> StageRecord:
        """Return the stage of re-summarization job ``job_id``.

        Raises:
            KeyError: if the task has no such job.
        """
        for record in self.stages:
            if record.job_id == job_id:
                return record
        raise KeyError(job_id)


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


class ModelInfo(Frozen, frozen=True, kw_only=True):
    """One ASR backend as /v1/models reports it."""

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


class ModelsResponse(Frozen, frozen=True, kw_only=True):
    """Answer to GET /v1/models."""

    models: list[ModelInfo]


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
    queue_depth: int | None = None
    worker_active: bool


class ErrorBody(Frozen, frozen=True, kw_only=True):
    """Every error response body."""

    detail: str
    status_code: int
    extra: dict[str, Any] | list[Any] | None = None


class WebhookState(enum.StrEnum):
    """Where the delivery of one webhook event is."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookAttempt(Frozen, frozen=True, kw_only=True):
    """One HTTP attempt to deliver a webhook event: the receiver's status code or the error."""

    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_s: Seconds


class WebhookDelivery(Base, kw_only=True):
    """The delivery of one event to a task's ``callback_url``, with every attempt."""

    event_id: str
    event: str
    state: WebhookState
    attempts: list[WebhookAttempt]
    delivered_at: datetime | None = None


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Body of a webhook POST (DESIGN §5). Every field is always sent, ``null`` included.

    ``event_id`` is the same for every attempt at one event, so a receiver can deduplicate.
    """

    event: str
    event_id: str
    task_id: str
    status: TaskStatus
    status_url: str
    result_version: int | None
    occurred_at: datetime | None
    batch_id: str | None
    error_code: str | None


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


class TaskPage(Frozen, frozen=True, kw_only=True):
    """Answer to GET /v1/tasks: newest first; pass ``next_cursor`` back for the next page."""

    tasks: list[TaskSummary]
    next_cursor: str | None


class SkippedMember(Frozen, frozen=True, kw_only=True):
    """A part or archive member that a batch did not turn into a task, and why."""

    name: str
    reason: str


class BatchAccepted(Frozen, frozen=True, kw_only=True):
    """Answer to an accepted POST /v1/batches."""

    batch_id: str
    task_ids: list[str]
    skipped: list[SkippedMember]
    status_url: str


class BatchRecord(Base, kw_only=True):
    """A batch as MAIE keeps it in Redis: its tasks in upload order and what was skipped."""

    batch_id: str
    tenant: str
    created_at: datetime
    request: TaskRequest
    task_ids: list[str]
    skipped: list[SkippedMember] = msgspec.field(default_factory=list)


class BatchStatus(Frozen, frozen=True, kw_only=True):
    """Answer to GET /v1/batches/{id}: counts by status and every task."""

    batch_id: str
    created_at: datetime
    total: int
    counts: dict[str, int]
    finished: bool
    tasks: list[TaskSummary]
    skipped: list[SkippedMember]
