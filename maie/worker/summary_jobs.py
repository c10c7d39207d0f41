"""Re-summarization jobs: a finished task's stored transcript summarized again into version n + 1.

The task is COMPLETE, or FAILED after its transcription (its version 1 is then ``partial``). The
API appends the job to the task as a ``summarize`` stage carrying a ``job_id`` and a
``template_id``; the ``resummarize`` actor runs it here. The task's status stays as it is (it only
moves forward) while the job's own stage shows its progress, attempts and error, and finally the
result version it produced. No ASR runs: the transcript comes from the pipeline's artifacts (the
clean segments where enhancement ran) or from the latest result version, which the new version
is built on (so speakers renamed there keep their names).

A job runs at most once even when its message is delivered twice: the summary is stored as the
job's artifact before the version is written, and ``TaskStore.add_result`` marks the job with its
version in the same transaction, so a second run gets the same version back.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from maie.errors import NotFoundError, PermanentError, StoreUnavailableError, is_permanent
from maie.metrics import STAGE_SECONDS
from maie.pipeline.llm import SummarizeInput
from maie.pipeline.result_builder import next_version
from maie.schemas import (
    AsrArtifact,
    EnhanceArtifact,
    ResultVersion,
    StageName,
    StageState,
    SummaryArtifact,
    TaskRecord,
)
from maie.worker.tracker import describe_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from maie.metrics import MetricsRecorder
    from maie.pipeline.prompts import TemplateCatalog
    from maie.schemas import Segment, StageRecord
    from maie.store import TaskStore

__all__ = ["SummaryJobs", "job_artifact"]

log = structlog.get_logger(__name__)


def job_artifact(job_id: str) -> str:
    """Artifact name of a job's summary."""
    return f"{StageName.SUMMARIZE.value}:{job_id}"


class SummaryJobs:
    """Runs and records re-summarization jobs."""

    def __init__(
        self,
        store: TaskStore,
        templates: TemplateCatalog,
        summarize: Callable[[SummarizeInput], SummaryArtifact],
        *,
        metrics: MetricsRecorder | None = None,
    ) -> None:
        self.store = store
        self.templates = templates
        self.summarize = summarize
        self.metrics = metrics

    @contextmanager
    def job(self, task_id: str, job_id: str) -> Iterator[TaskRecord | None]:
        """Mark the job running for the body and done after it; yields None when there is nothing to do.

        Nothing is done for an unknown task or job, or a job already done or failed. A permanent
        error fails the job (never the task); any other error is noted and re-raised for a retry.
        """
        with structlog.contextvars.bound_contextvars(job_id=job_id, stage=StageName.SUMMARIZE.value):
            record = self._begin(task_id, job_id)
            if record is None:
                yield None
                return
            started = time.perf_counter()
            try:
                yield record
            except BaseException as exc:
                if is_permanent(exc):
                    self.fail(task_id, job_id, exc)
                else:
                    detail = describe_error(exc)[0]
                    self._change(task_id, job_id, lambda job: setattr(job, "error", detail))
                raise
            self._finish(task_id, job_id, time.perf_counter() - started)

    def run(self, record: TaskRecord, job_id: str) -> ResultVersion:
        """Summarize the stored transcript with the job's template and store the new version."""
        job = record.job(job_id)
        if job.template_id is None:
            raise PermanentError("the summary job names no template")
        base = self.store.get_result(record.task_id, record.result_version or 1)
        if base is None or base.metrics is None:
            raise PermanentError(
                f"the transcript of task {record.task_id} has expired; submit the recording again"
            )
        summary = self.store.get_artifact(record.task_id, job_artifact(job_id), SummaryArtifact)
        if summary is None:
            data = SummarizeInput(
                segments=self._segments(record, base),
                template=self.templates.get(job.template_id),
                language=base.results.language,
            )
            summary = self.summarize(data)
            self.store.put_artifact(record.task_id, job_artifact(job_id), summary)
        made = summary

        def build(version: int) -> ResultVersion:
            # Built on the version just before it: one added meanwhile (a rename) is kept.
            before = base
            if version - 1 != base.version:
                before = self.store.get_result(record.task_id, version - 1) or base
            return next_version(before, version, summary=made, template_id=job.template_id)

        result = self.store.add_result(record.task_id, build, job_id=job_id)
        log.info("summary_job.stored", result_version=result.version, template_id=job.template_id)
        return result

    def fail(self, task_id: str, job_id: str, exc: BaseException) -> None:
        """Fail the job (the task keeps its status and its earlier versions)."""
        detail, _ = describe_error(exc)

        def change(job: StageRecord) -> None:
            if job.status in (StageState.DONE, StageState.FAILED):
                return
            job.status = StageState.FAILED
            job.error = detail
            job.finished_at = datetime.now(UTC)

        self._change(task_id, job_id, change)
        log.warning("summary_job.failed", error=detail)

    def _segments(self, record: TaskRecord, base: ResultVersion) -> list[Segment]:
        """The clean segments where enhancement ran, else the result's (both with their speakers)."""
        enhanced = self.store.get_artifact(record.task_id, StageName.ENHANCE, EnhanceArtifact)
        if enhanced is not None and enhanced.segments:
            return enhanced.segments
        if base.results.segments:
            return base.results.segments
        asr = self.store.get_artifact(record.task_id, StageName.TRANSCRIBE, AsrArtifact)
        if asr is not None:
            return asr.segments
        raise PermanentError(f"task {record.task_id} has no stored transcript to summarize")

    def _begin(self, task_id: str, job_id: str) -> TaskRecord | None:
        def change(job: StageRecord) -> None:
            if job.status in (StageState.DONE, StageState.FAILED):
                return
            job.status = StageState.RUNNING
            job.attempts += 1
            job.started_at = job.started_at or datetime.now(UTC)

        record = self._change(task_id, job_id, change)
        if record is None:
            return None
        job = record.job(job_id)
        if job.status != StageState.RUNNING:
            log.info("summary_job.skipped", reason=f"job already {job.status.value}")
            return None
        log.info("summary_job.started", attempt=job.attempts, template_id=job.template_id)
        return record

    def _finish(self, task_id: str, job_id: str, duration_s: float) -> None:
        def change(job: StageRecord) -> None:
            job.status = StageState.DONE
            job.finished_at = datetime.now(UTC)
            job.duration_s = round(duration_s, 3)
            job.error = None

        self._change(task_id, job_id, change)
        if self.metrics is not None:
            self.metrics.observe(STAGE_SECONDS, duration_s, StageName.SUMMARIZE.value)
        log.info("summary_job.finished", duration_s=round(duration_s, 3))

    def _change(self, task_id: str, job_id: str, change: Callable[[StageRecord], None]) -> TaskRecord | None:
        try:
            return self.store.update(task_id, lambda record: change(record.job(job_id))).record
        except (NotFoundError, KeyError):
            log.warning("summary_job.missing")
            return None
        except StoreUnavailableError:
            log.warning("summary_job.not_recorded")
            raise
