"""Stage bookkeeping on the task record: running → done, attempts, timing, failure.

The status only moves forward. Every change is an optimistic transaction on the record, so a
redelivered message racing its original cannot move a task backwards or undo a failure. A task
deleted while one of its stages runs ends that stage quietly (:meth:`StageTracker.vanished`).
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from maie.errors import MaieError, NotFoundError, StoreUnavailableError, is_permanent
from maie.metrics import RTF, STAGE_SECONDS, TaskOutcome
from maie.schemas import StageName, StageState, TaskRecord, TaskStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from maie.metrics import MetricsRecorder
    from maie.store import TaskStore

__all__ = ["STATUS_OF_STAGE", "StageTracker", "describe_error"]

log = structlog.get_logger(__name__)

#: Task status while a stage runs.
STATUS_OF_STAGE = {
    # Fetching a recording given by URL is part of making it ready: its stage tells them apart.
    StageName.FETCH: TaskStatus.PREPROCESSING,
    StageName.PREPROCESS: TaskStatus.PREPROCESSING,
    StageName.TRANSCRIBE: TaskStatus.PROCESSING_ASR,
    # Diarization runs beside ASR: the task is in that step while either runs.
    StageName.DIARIZE: TaskStatus.PROCESSING_ASR,
    StageName.ENHANCE: TaskStatus.PROCESSING_LLM,
    StageName.SUMMARIZE: TaskStatus.PROCESSING_LLM,
}


def describe_error(exc: BaseException) -> tuple[str, str]:
    """The detail and error code stored for ``exc``."""
    if isinstance(exc, MaieError):
        return exc.detail, exc.code
    return f"{type(exc).__name__}: {exc}", "internal_error"


def _now() -> datetime:
    return datetime.now(UTC)


class StageTracker:
    """Records what each stage of a task is doing."""

    def __init__(self, store: TaskStore, *, keep_audio: bool, metrics: MetricsRecorder | None = None) -> None:
        self.store = store
        self.keep_audio = keep_audio
        #: Where stage durations and task outcomes are counted (cluster-wide, in Redis).
        self.metrics = metrics
        self._finish_hooks: list[Callable[[str], None]] = []
        self._finished_hooks: list[Callable[[str], None]] = []
        self._keep_partial: Callable[[str], int | None] | None = None

    def before_finish(self, hook: Callable[[str], None]) -> None:
        """Call ``hook(task_id)`` just before a task is marked COMPLETE or FAILED.

        It runs before the record changes, so work it queues (a webhook) is not lost if the
        process dies right after: the finishing message is redelivered and runs it again.
        """
        self._finish_hooks.append(hook)

    def keep_partial_results(self, keep: Callable[[str], int | None]) -> None:
        """Call ``keep(task_id)`` when a task fails, before it is marked FAILED.

        ``keep`` stores what the task's finished stages produced (a transcript whose enhancement or
        summary failed) as a result version and returns its number, or None when there is nothing
        to keep; the failed task then points at that version. A failure of ``keep`` is logged and
        the task fails without it.
        """
        self._keep_partial = keep

    def _partial_result(self, task_id: str) -> int | None:
        if self._keep_partial is None:
            return None
        try:
            return self._keep_partial(task_id)
        except (MaieError, ValueError) as exc:  # the store, or an artifact that no longer decodes
            log.warning("task.partial_result_not_kept", reason=describe_error(exc)[0])
            return None

    def _run_finish_hooks(self, task_id: str) -> None:
        for hook in self._finish_hooks:
            hook(task_id)

    def after_finish(self, hook: Callable[[str], None]) -> None:
        """Call ``hook(task_id)`` once a task is recorded COMPLETE or FAILED (also on a redelivery).

        For notices that may be lost without harm (whoever waits also looks by themselves); a hook
        must not raise.
        """
        self._finished_hooks.append(hook)

    def _run_finished_hooks(self, task_id: str) -> None:
        for hook in self._finished_hooks:
            hook(task_id)

    @contextmanager
    def stage(
        self, task_id: str, name: StageName, *, on_done: Callable[[TaskRecord], None] | None = None
    ) -> Iterator[TaskRecord | None]:
        """Mark stage ``name`` running for the body and done after it; yields None to skip.

        The body is skipped (None) when the task is unknown, expired or already finished. A
        permanent error fails the task at once; any other error is noted on the stage and re-raised
        so the broker retries the message. ``on_done`` gets the record as the transaction that
        marked the stage done stored it (what stages running beside it had done by then).
        """
        structlog.contextvars.bind_contextvars(stage=name.value)
        try:
            record = self._begin(task_id, name)
            if record is None:
                yield None
                return
            started = time.perf_counter()
            try:
                yield record
            except BaseException as exc:
                # Not for an interrupt (time limit, shutdown): it must not wait on the database.
                if isinstance(exc, Exception) and self.vanished(record):
                    return  # deleted while the stage ran: the message is done, not retried
                if is_permanent(exc):
                    self.fail(task_id, name, exc)
                else:
                    self._note_error(task_id, name, exc)
                raise
            try:
                done = self._finish(task_id, name, time.perf_counter() - started)
            except NotFoundError:
                self.vanished(record)
            else:
                if on_done is not None:
                    on_done(done)
        finally:
            structlog.contextvars.unbind_contextvars("stage")

    def vanished(self, record: TaskRecord) -> bool:
        """Whether the task was deleted while a stage worked on it; if so, clean up after the stage.

        A deletion removes the task's rows and audio folder at once; a stage still running then
        fails to store what it made (the task is not found) and may have written files into the
        folder again. Those go, and the message ends as done instead of being retried.
        """
        try:
            self.store.get(record.task_id)
        except NotFoundError:
            log.info("task.deleted_while_running")
            shutil.rmtree(Path(record.audio_path).parent, ignore_errors=True)
            return True
        except StoreUnavailableError:
            return False
        return False

    def load(self, task_id: str) -> TaskRecord | None:
        """Return the task if it exists and has not finished, else None."""
        try:
            record = self.store.get(task_id)
        except NotFoundError:
            log.warning("task.missing")
            return None
        return None if record.status.terminal else record

    def _begin(self, task_id: str, name: StageName) -> TaskRecord | None:
        def change(record: TaskRecord) -> bool:
            """Mark the stage running; whether the task had finished already (then nothing changes)."""
            if record.status.terminal:
                return True
            now = _now()
            stage = record.stage(name)
            stage.status = StageState.RUNNING
            stage.attempts += 1
            stage.started_at = stage.started_at or now
            stage.finished_at = None
            target = STATUS_OF_STAGE[name]
            if target.rank > record.status.rank:
                record.status = target
            record.started_at = record.started_at or now
            return False

        try:
            record, finished = self.store.update(task_id, change)
        except NotFoundError:
            log.warning("stage.task_missing")
            return None
        if finished:
            log.info("stage.skipped", reason=f"task already {record.status.value}")
            return None
        log.info("stage.started", attempt=record.stage(name).attempts)
        return record

    def skip(self, task_id: str, name: StageName) -> None:
        """Mark a running stage as skipped: it ends without doing its work (it still gets a duration)."""

        def change(record: TaskRecord) -> None:
            record.stage(name).status = StageState.SKIPPED

        self.store.update(task_id, change)

    def _finish(self, task_id: str, name: StageName, duration_s: float) -> TaskRecord:
        def change(record: TaskRecord) -> None:
            stage = record.stage(name)
            if stage.status != StageState.SKIPPED:
                stage.status = StageState.DONE
            stage.finished_at = _now()
            stage.duration_s = round(duration_s, 3)
            stage.error = None

        record = self.store.update(task_id, change).record
        log.info("stage.finished", duration_s=round(duration_s, 3))
        if self.metrics is not None:
            self.metrics.observe(STAGE_SECONDS, duration_s, name.value)
        return record

    def _note_error(self, task_id: str, name: StageName, exc: BaseException) -> None:
        detail, _ = describe_error(exc)
        log.warning("stage.error", error=detail, retryable=True)

        def change(record: TaskRecord) -> None:
            record.stage(name).error = detail

        try:
            self.store.update(task_id, change)
        except (StoreUnavailableError, NotFoundError):
            log.warning("stage.error_not_recorded")

    def fail(self, task_id: str, name: StageName | None, exc: BaseException) -> None:
        """Fail the task now with ``exc`` (no-op if it already finished).

        What finished stages produced is kept first (:meth:`keep_partial_results`): a task that
        fails after its transcription shows its transcript, can be exported and summarized again.
        """
        detail, code = describe_error(exc)
        partial = self._partial_result(task_id)
        try:
            self._run_finish_hooks(task_id)
        except MaieError as hook_exc:
            log.warning("task.finish_hook_failed", reason=hook_exc.detail)

        def change(record: TaskRecord) -> bool:
            """Fail the task; whether this change did it (it had not finished before)."""
            if record.status.terminal:
                return False
            now = _now()
            record.status = TaskStatus.FAILED
            record.error = detail
            record.error_code = code
            record.failed_stage = name.value if name else None
            record.completed_at = now
            if record.result_version is None:
                record.result_version = partial
            if name is not None:
                stage = record.stage(name)
                stage.status = StageState.FAILED
                stage.finished_at = now
                stage.error = detail
            return True

        try:
            record, failed_now = self.store.update(task_id, change)
        except (StoreUnavailableError, NotFoundError) as store_exc:
            log.error("task.fail_not_recorded", error=detail, reason=str(store_exc))  # noqa: TRY400 - not an exception context
            return
        log.warning(
            "task.failed",
            error=detail,
            error_code=code,
            failed_stage=record.failed_stage,
            result_version=record.result_version,
        )
        if failed_now and self.metrics is not None:
            self.metrics.task_finished(TaskOutcome.FAILED, stage=record.failed_stage, error_code=code)
        self._drop_audio(record)
        self._run_finished_hooks(task_id)

    def complete(self, task_id: str, result_version: int, *, rtf: float | None = None) -> TaskRecord:
        """Mark the task COMPLETE with its result version, then drop its audio unless kept.

        ``rtf``, the run's real-time factor, is counted in ``maie_rtf`` when this call completes the task.
        """
        self._run_finish_hooks(task_id)

        def change(record: TaskRecord) -> bool:
            """Complete the task; whether this change did it (it had not finished before)."""
            if record.status.terminal:
                return False
            record.status = TaskStatus.COMPLETE
            record.result_version = result_version
            record.completed_at = _now()
            return True

        record, completed_now = self.store.update(task_id, change)
        log.info("task.complete", result_version=record.result_version)
        if completed_now and self.metrics is not None:
            self.metrics.task_finished(TaskOutcome.COMPLETE)
            if rtf is not None:
                self.metrics.observe(RTF, rtf)
        self._drop_audio(record)
        self._run_finished_hooks(task_id)
        return record

    def _drop_audio(self, record: TaskRecord) -> None:
        if not self.keep_audio:
            shutil.rmtree(Path(record.audio_path).parent, ignore_errors=True)
