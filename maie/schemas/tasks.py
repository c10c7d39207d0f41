"""Records MAIE keeps in Redis: tasks with their stages and webhook deliveries, and batches."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from maie.schemas.base import Base, Feature, Frozen, Seconds, StageName, StageState, TaskStatus
from maie.schemas.results import AudioInfo
from maie.schemas.submission import SubmissionOptions

__all__ = [
    "BatchRecord",
    "SkippedMember",
    "StageRecord",
    "TaskRecord",
    "TaskRequest",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookState",
]


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


class TaskRequest(SubmissionOptions, frozen=True, kw_only=True):
    """What the client asked for, as validated at submit time: every submission field, and the file's name.

    The fields are those of :class:`~maie.schemas.SubmissionOptions` (``None`` leaves an option to
    the server's default), with the features parsed and the ASR backend resolved.
    """

    features: list[Feature]
    asr_backend: str
    #: The upload's name (a label only, checked for path tricks; never used to build a path).
    filename: str | None = None
    #: The recording's URL without credentials, for a recording given by ``url`` (a label too).
    source_url: str | None = None


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
    #: The recording's URL as the client gave it (credentials included), for the fetch stage
    #: only: never shown, and removed from the record once the recording is fetched.
    fetch_url: str | None = None

    @property
    def has_result(self) -> bool:
        """Whether the task finished with a result version: COMPLETE, or FAILED after transcription.

        A task that failed in enhancement or summary keeps its transcript as version 1
        (``kind: "partial"``); such a task can be exported and summarized again like a COMPLETE one.
        """
        if self.status == TaskStatus.COMPLETE:
            return True
        return self.status == TaskStatus.FAILED and self.result_version is not None

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


class BatchRecord(Base, kw_only=True):
    """A batch as MAIE keeps it in Redis: its tasks in upload order and what was skipped."""

    batch_id: str
    tenant: str
    created_at: datetime
    request: TaskRequest
    task_ids: list[str]
    skipped: list[SkippedMember] = msgspec.field(default_factory=list)


class SkippedMember(Frozen, frozen=True, kw_only=True):
    """A part or archive member that a batch did not turn into a task, and why."""

    name: str
    reason: str
