"""The actor table: every Dramatiq actor MAIE has, with its queue, time limit, retries and ``throws``.

The API sends messages from it (:meth:`ActorSpec.message`, without importing the worker's code) and
the worker declares its actors from it (:meth:`ActorSpec.options`), so a message the API sends
always names an actor the worker declares, on the queue it consumes. Time limits and retries come
from the settings; what fails at once instead of being retried is :data:`maie.errors.PERMANENT_ERRORS`
for every actor.

The order a task's stages run in is here too: its planned stages, in order, grouped into steps
(:func:`steps`). A step is one stage, or the stages of :data:`BESIDE` that follow one another in
the plan: transcribe and diarize, which run at once on their own queues and join before the next
step (:func:`next_step`).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, NamedTuple

from maie.broker import QUEUE_CPU, QUEUE_GPU, stage_message
from maie.errors import PERMANENT_ERRORS
from maie.schemas import StageName

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import dramatiq

    from maie.config import Settings

__all__ = [
    "ACTORS",
    "ACTOR_OF_STAGE",
    "BESIDE",
    "DELIVER_DELETION",
    "DELIVER_WEBHOOK",
    "DIARIZE",
    "ENHANCE",
    "FETCH",
    "FETCH_SLACK_S",
    "FINALIZE",
    "FINALIZE_TIME_LIMIT_S",
    "PREPROCESS",
    "RESUMMARIZE",
    "SUMMARIZE",
    "TRANSCRIBE",
    "WEBHOOK_SLACK_S",
    "ActorKind",
    "ActorSpec",
    "next_step",
    "steps",
]

#: Seconds finalize may take: it only reads and writes small records.
FINALIZE_TIME_LIMIT_S = 60
#: Seconds a webhook delivery may take beyond its HTTP timeout (waiting for the task, recording).
WEBHOOK_SLACK_S = 30
#: Seconds the fetch stage may take beyond the fetch's own limit and the probe's (bookkeeping).
FETCH_SLACK_S = 60


class ActorKind(enum.StrEnum):
    """What an actor's message is about, which decides what its final failure fails."""

    #: A step of a task's pipeline (task id): its failure fails the task.
    STAGE = "stage"
    #: A job on a finished task (task id, job id): its failure fails the job, never the task.
    JOB = "job"
    #: A notice about a task (a webhook): its failure fails nothing.
    NOTICE = "notice"


def _stage_retries(settings: Settings) -> int:
    return settings.worker.max_retries


def _model_time(settings: Settings) -> float:
    return settings.worker.model_stage_time_limit_s


def _fetch_time(settings: Settings) -> float:
    """Above the fetch's own total timeout, so that its clear ``fetch_too_slow`` comes first."""
    return settings.fetch.total_timeout_s + settings.audio.decode_time_limit_s + FETCH_SLACK_S


class ActorSpec(NamedTuple):
    """One actor of the table."""

    #: The Dramatiq actor name, which messages carry.
    name: str
    #: The queue its messages go to (CPU or GPU workers consume it).
    queue: str
    kind: ActorKind
    #: Seconds one message may run, from the settings.
    time_limit_s: Callable[[Settings], float]
    #: Retries after a failure that is not permanent, from the settings.
    max_retries: Callable[[Settings], int] = _stage_retries
    #: The pipeline stage it runs (a stage actor that is bookkeeping only, finalize, has None).
    stage: StageName | None = None
    #: ``(min, max)`` back-off in ms, when it is not the broker's default (``MAIE_RETRY_*_BACKOFF_MS``).
    backoff_ms: Callable[[Settings], tuple[int, int]] | None = None

    def options(self, settings: Settings) -> dict[str, Any]:
        """The options the worker declares the actor with (``dramatiq.actor(**options)``)."""
        options: dict[str, Any] = {
            "queue_name": self.queue,
            "max_retries": self.max_retries(settings),
            "time_limit": int(self.time_limit_s(settings) * 1000),
            "throws": PERMANENT_ERRORS,
        }
        if self.backoff_ms is not None:
            options["min_backoff"], options["max_backoff"] = self.backoff_ms(settings)
        return options

    def message(self, task_id: str, *more: str, request_id: str | None = None) -> dramatiq.Message[None]:
        """A message for this actor about ``task_id`` (see :func:`maie.broker.stage_message`)."""
        return stage_message(self.name, self.queue, task_id, *more, request_id=request_id)


#: Only for recordings given by URL: download, then probe as an upload (CPU: network and a probe).
FETCH = ActorSpec("fetch", QUEUE_CPU, ActorKind.STAGE, _fetch_time, stage=StageName.FETCH)
PREPROCESS = ActorSpec(
    "preprocess",
    QUEUE_CPU,
    ActorKind.STAGE,
    lambda s: s.worker.preprocess_time_limit_s,
    stage=StageName.PREPROCESS,
)
TRANSCRIBE = ActorSpec("transcribe", QUEUE_GPU, ActorKind.STAGE, _model_time, stage=StageName.TRANSCRIBE)
#: Who spoke when, beside transcribe: its backends run on the CPU (pyannote may take the GPU too).
DIARIZE = ActorSpec("diarize", QUEUE_CPU, ActorKind.STAGE, _model_time, stage=StageName.DIARIZE)
ENHANCE = ActorSpec("enhance", QUEUE_GPU, ActorKind.STAGE, _model_time, stage=StageName.ENHANCE)
SUMMARIZE = ActorSpec("summarize", QUEUE_GPU, ActorKind.STAGE, _model_time, stage=StageName.SUMMARIZE)
FINALIZE = ActorSpec("finalize", QUEUE_CPU, ActorKind.STAGE, lambda _: FINALIZE_TIME_LIMIT_S)
#: A re-summarization job (task id, job id).
RESUMMARIZE = ActorSpec("resummarize", QUEUE_GPU, ActorKind.JOB, _model_time)
#: One delivery attempt of a task's webhook (task id, result version or None).
DELIVER_WEBHOOK = ActorSpec(
    "deliver_webhook",
    QUEUE_CPU,
    ActorKind.NOTICE,
    lambda s: s.webhook.timeout_s + WEBHOOK_SLACK_S,
    max_retries=lambda s: s.webhook.max_retries,
    backoff_ms=lambda s: (s.webhook.min_backoff_ms, s.webhook.max_backoff_ms),
)
#: One delivery attempt of a deleted task's ``task.deleted`` webhook (task id, callback URL, the
#: event as JSON): the task is gone, so the message carries what the delivery needs.
DELIVER_DELETION = ActorSpec(
    "deliver_deletion",
    QUEUE_CPU,
    ActorKind.NOTICE,
    lambda s: s.webhook.timeout_s + WEBHOOK_SLACK_S,
    max_retries=lambda s: s.webhook.max_retries,
    backoff_ms=lambda s: (s.webhook.min_backoff_ms, s.webhook.max_backoff_ms),
)

#: Every actor, in the order the worker declares them.
ACTORS: tuple[ActorSpec, ...] = (
    FETCH,
    PREPROCESS,
    TRANSCRIBE,
    DIARIZE,
    FINALIZE,
    ENHANCE,
    SUMMARIZE,
    RESUMMARIZE,
    DELIVER_WEBHOOK,
    DELIVER_DELETION,
)
#: The actor that runs each pipeline stage.
ACTOR_OF_STAGE: dict[StageName, ActorSpec] = {a.stage: a for a in ACTORS if a.stage is not None}

#: Stages that run at the same time when they follow one another in a plan; the next step starts
#: once all of them are done. Diarization needs only the preprocessed audio, and ASR's segments
#: are needed only when speakers are assigned (by the stages after them), so neither waits for
#: the other (docs/diarization.md, "Speed", has the stage and whole-task figures).
BESIDE = frozenset({StageName.TRANSCRIBE, StageName.DIARIZE})


def steps(stages: Sequence[StageName]) -> list[tuple[StageName, ...]]:
    """The planned ``stages`` grouped into steps, in order: consecutive :data:`BESIDE` stages form one."""
    grouped: list[tuple[StageName, ...]] = []
    for stage in stages:
        if grouped and stage in BESIDE and grouped[-1][-1] in BESIDE:
            grouped[-1] = (*grouped[-1], stage)
        else:
            grouped.append((stage,))
    return grouped


def next_step(
    stages: Sequence[StageName], finished: StageName, *, done: Callable[[StageName], bool]
) -> tuple[StageName, ...] | None:
    """What to send once ``finished`` is done: the next step's stages, ``()`` for finalize, or None.

    Args:
        stages: The task's planned stages, in order.
        finished: The stage that just finished.
        done: Whether a stage of the plan is done (or skipped), as the record that marked
            ``finished`` done reads: of stages that run at once, only the last to finish finds
            them all done, so exactly one of them sends the next step.

    Returns:
        None while another stage of ``finished``'s step still runs; else the stages of the next
        step, or ``()`` when ``finished``'s step is the last (finalize comes next).
    """
    plan = steps(stages)
    for index, step in enumerate(plan):
        if finished in step:
            if not all(done(other) for other in step if other != finished):
                return None
            return plan[index + 1] if index + 1 < len(plan) else ()
    return ()
