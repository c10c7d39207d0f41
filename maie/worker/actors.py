"""Thin actors, one per stage: mark the stage, run it through the runtime, send the next message."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import dramatiq
from dramatiq.middleware import CurrentMessage

from maie.broker import QUEUE_CPU, QUEUE_GPU
from maie.errors import PermanentError
from maie.schemas import StageName

if TYPE_CHECKING:
    from collections.abc import Callable

    from dramatiq.brokers.redis import RedisBroker

    from maie.worker.runtime import WorkerRuntime

__all__ = ["STAGE_OF_ACTOR", "Actors", "register_actors"]

#: Which stage each actor runs (finalize is bookkeeping, not a stage).
STAGE_OF_ACTOR: dict[str, StageName | None] = {
    "preprocess": StageName.PREPROCESS,
    "transcribe": StageName.TRANSCRIBE,
    "finalize": None,
}
#: Seconds finalize may take: it only reads and writes small records.
FINALIZE_TIME_LIMIT_S = 60
#: Errors that fail the task at once instead of being retried.
PERMANENT = (PermanentError, MemoryError)
#: Seconds a webhook delivery may take beyond its HTTP timeout (waiting for the task, recording).
WEBHOOK_SLACK_S = 30


class Actors(NamedTuple):
    """The registered actors."""

    preprocess: dramatiq.Actor[[str], None]
    transcribe: dramatiq.Actor[[str], None]
    finalize: dramatiq.Actor[[str], None]
    deliver_webhook: dramatiq.Actor[[str], None]


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
            throws=PERMANENT,
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
        actors.finalize.send(task_id)

    def finalize(task_id: str) -> None:
        record = tracker.load(task_id)
        if record is not None:
            runtime.finalize(record)

    webhook = runtime.settings.webhook

    def deliver_webhook(task_id: str) -> None:
        message = CurrentMessage.get_current_message()
        retries = message.options.get("retries", 0) if message is not None else 0
        runtime.webhooks.deliver(task_id, final=retries >= webhook.max_retries)

    actors = Actors(
        preprocess=declare(preprocess, QUEUE_CPU, limits.preprocess_time_limit_s),
        transcribe=declare(transcribe, QUEUE_GPU, limits.model_stage_time_limit_s),
        finalize=declare(finalize, QUEUE_CPU, FINALIZE_TIME_LIMIT_S),
        deliver_webhook=dramatiq.actor(
            actor_name="deliver_webhook",
            queue_name=QUEUE_CPU,
            broker=broker,
            max_retries=webhook.max_retries,
            min_backoff=webhook.min_backoff_ms,
            max_backoff=webhook.max_backoff_ms,
            time_limit=int((webhook.timeout_s + WEBHOOK_SLACK_S) * 1000),
            throws=PERMANENT,
        )(deliver_webhook),
    )
    tracker.before_finish(lambda task_id: runtime.webhooks.announce(task_id, actors.deliver_webhook.send))
    return actors
