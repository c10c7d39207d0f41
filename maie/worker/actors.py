"""Thin actors, one per stage: mark the stage, run it through the runtime, send the next message."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import dramatiq
from dramatiq.middleware import CurrentMessage

from maie.broker import QUEUE_CPU, QUEUE_GPU
from maie.errors import PERMANENT_ERRORS
from maie.schemas import StageName

if TYPE_CHECKING:
    from collections.abc import Callable

    from dramatiq.brokers.redis import RedisBroker

    from maie.schemas import TaskRecord
    from maie.worker.runtime import WorkerRuntime
    from maie.worker.tracker import StageTracker

__all__ = ["STAGE_OF_ACTOR", "Actors", "register_actors"]

#: Which stage each actor runs (finalize is bookkeeping, not a stage).
STAGE_OF_ACTOR: dict[str, StageName | None] = {
    "preprocess": StageName.PREPROCESS,
    "transcribe": StageName.TRANSCRIBE,
    "enhance": StageName.ENHANCE,
    "summarize": StageName.SUMMARIZE,
    "finalize": None,
}
#: Seconds finalize may take: it only reads and writes small records.
FINALIZE_TIME_LIMIT_S = 60
#: Seconds a webhook delivery may take beyond its HTTP timeout (waiting for the task, recording).
WEBHOOK_SLACK_S = 30


class Actors(NamedTuple):
    """The registered actors."""

    preprocess: dramatiq.Actor[[str], None]
    transcribe: dramatiq.Actor[[str], None]
    finalize: dramatiq.Actor[[str], None]
    enhance: dramatiq.Actor[[str], None]
    summarize: dramatiq.Actor[[str], None]
    resummarize: dramatiq.Actor[[str, str], None]
    deliver_webhook: dramatiq.Actor[[str, int | None], None]

    def after(self, record: TaskRecord, stage: StageName) -> dramatiq.Actor[[str], None]:
        """The actor of the stage planned after ``stage`` for this task, or finalize."""
        names = [s.name for s in record.stages]
        later = names[names.index(stage) + 1 :] if stage in names else []
        return getattr(self, later[0].value) if later else self.finalize


def _model_stage(
    tracker: StageTracker,
    stage: StageName,
    run: Callable[[TaskRecord], object],
    registered: Callable[[], Actors],
) -> Callable[[str], None]:
    """The body of a stage actor: run ``stage`` once, then send the task to its next planned stage."""

    def body(task_id: str) -> None:
        with tracker.stage(task_id, stage) as record:
            if record is None:
                return
            run(record)
        registered().after(record, stage).send(task_id)

    body.__name__ = body.__qualname__ = stage.value
    return body


def _summary_job(runtime: WorkerRuntime, registered: Callable[[], Actors]) -> Callable[[str, str], None]:
    """The body of the re-summarization actor: run the job once, then announce its version."""

    def resummarize(task_id: str, job_id: str) -> None:
        jobs = runtime.summary_jobs
        with jobs.job(task_id, job_id) as record:
            if record is None:
                return
            result = jobs.run(record, job_id)
        runtime.webhooks.announce_version(task_id, result.version, registered().deliver_webhook.send)

    return resummarize


def register_actors(broker: RedisBroker, runtime: WorkerRuntime) -> Actors:
    """Declare MAIE's actors on ``broker``, bound to ``runtime``."""
    limits = runtime.settings.worker
    tracker = runtime.tracker

    def declare(fn: Callable[[str], None], queue: str, time_limit_s: int) -> dramatiq.Actor[[str], None]:
        decorate = dramatiq.actor(
            actor_name=fn.__name__,
            queue_name=queue,
            broker=broker,
            max_retries=limits.max_retries,
            time_limit=time_limit_s * 1000,
            throws=PERMANENT_ERRORS,
        )
        return decorate(fn)

    def preprocess(task_id: str) -> None:
        with tracker.stage(task_id, StageName.PREPROCESS) as record:
            if record is None:
                return
            runtime.preprocess(record)
        actors.transcribe.send(task_id)

    def transcribe(task_id: str) -> None:
        with tracker.stage(task_id, StageName.TRANSCRIBE) as record:
            if record is None:
                return
            runtime.transcribe(record)
        actors.after(record, StageName.TRANSCRIBE).send(task_id)

    enhance = _model_stage(tracker, StageName.ENHANCE, runtime.enhance, lambda: actors)
    summarize = _model_stage(tracker, StageName.SUMMARIZE, runtime.summarize, lambda: actors)

    def finalize(task_id: str) -> None:
        record = tracker.load(task_id)
        if record is not None:
            runtime.finalize(record)

    webhook = runtime.settings.webhook

    def deliver_webhook(task_id: str, version: int | None = None) -> None:
        message = CurrentMessage.get_current_message()
        retries = message.options.get("retries", 0) if message is not None else 0
        runtime.webhooks.deliver(task_id, final=retries >= webhook.max_retries, version=version)

    resummarize = _summary_job(runtime, lambda: actors)

    actors = Actors(
        preprocess=declare(preprocess, QUEUE_CPU, limits.preprocess_time_limit_s),
        transcribe=declare(transcribe, QUEUE_GPU, limits.model_stage_time_limit_s),
        finalize=declare(finalize, QUEUE_CPU, FINALIZE_TIME_LIMIT_S),
        enhance=declare(enhance, QUEUE_GPU, limits.model_stage_time_limit_s),
        summarize=declare(summarize, QUEUE_GPU, limits.model_stage_time_limit_s),
        resummarize=dramatiq.actor(
            actor_name="resummarize",
            queue_name=QUEUE_GPU,
            broker=broker,
            max_retries=limits.max_retries,
            time_limit=limits.model_stage_time_limit_s * 1000,
            throws=PERMANENT_ERRORS,
        )(resummarize),
        deliver_webhook=dramatiq.actor(
            actor_name="deliver_webhook",
            queue_name=QUEUE_CPU,
            broker=broker,
            max_retries=webhook.max_retries,
            min_backoff=webhook.min_backoff_ms,
            max_backoff=webhook.max_backoff_ms,
            time_limit=int((webhook.timeout_s + WEBHOOK_SLACK_S) * 1000),
            throws=PERMANENT_ERRORS,
        )(deliver_webhook),
    )
    tracker.before_finish(
        lambda task_id: runtime.webhooks.announce(task_id, lambda tid: actors.deliver_webhook.send(tid, None))
    )
    return actors
