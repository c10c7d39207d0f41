"""Thin actors, one per entry of :mod:`maie.actor_table`: mark the stage, run it, send the next message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from maie.actor_table import (
    ACTOR_OF_STAGE,
    ACTORS,
    DELIVER_DELETION,
    DELIVER_WEBHOOK,
    DIARIZE,
    ENHANCE,
    FETCH,
    FINALIZE,
    PREPROCESS,
    RESUMMARIZE,
    SUMMARIZE,
    TRANSCRIBE,
    ActorKind,
    ActorSpec,
    next_step,
)
from maie.errors import NotFoundError
from maie.schemas import StageName, StageState

if TYPE_CHECKING:
    from collections.abc import Callable

    from dramatiq.brokers.redis import RedisBroker

    from maie.schemas import TaskRecord
    from maie.worker.runtime import WorkerRuntime

__all__ = ["STAGE_OF_ACTOR", "ActorBodies", "register_actors"]

#: Which stage each pipeline actor runs (finalize is bookkeeping, not a stage): its final failure
#: fails the task at that stage.
STAGE_OF_ACTOR: dict[str, StageName | None] = {a.name: a.stage for a in ACTORS if a.kind is ActorKind.STAGE}


class ActorBodies:
    """What each actor does, bound to one worker's runtime; :func:`register_actors` declares them."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        #: The declared actors by name, filled in by :func:`register_actors`.
        self.declared: dict[str, dramatiq.Actor[..., None]] = {}

    def of(self, spec: ActorSpec) -> Callable[..., None]:
        """The body of the actor ``spec``.

        Raises:
            KeyError: if the table has an actor this worker has no body for.
        """
        bodies: dict[str, Callable[..., None]] = {
            FETCH.name: self.fetch,
            PREPROCESS.name: self.preprocess,
            TRANSCRIBE.name: self.transcribe,
            DIARIZE.name: self.diarize,
            ENHANCE.name: self.enhance,
            SUMMARIZE.name: self.summarize,
            FINALIZE.name: self.finalize,
            RESUMMARIZE.name: self.resummarize,
            DELIVER_WEBHOOK.name: self.deliver_webhook,
            DELIVER_DELETION.name: self.deliver_deletion,
        }
        return bodies[spec.name]

    def send(self, spec: ActorSpec, *args: Any) -> None:  # noqa: ANN401 - the actor's own arguments
        """Send a message to the declared actor ``spec``."""
        self.declared[spec.name].send(*args)

    def _stage(self, task_id: str, stage: StageName, run: Callable[[TaskRecord], object]) -> None:
        """Run ``stage`` once, then send the task to its next planned step (or finalize).

        Of stages that run beside each other, the last to finish sends the next step: the record
        as its own finishing transaction left it shows the others done.
        """
        sent: list[tuple[StageName, ...] | None] = []

        def after(done: TaskRecord) -> None:
            state = {s.name: s.status for s in done.stages if s.job_id is None}
            sent.append(
                next_step(
                    list(state),
                    stage,
                    done=lambda name: state[name] in {StageState.DONE, StageState.SKIPPED},
                )
            )

        with self.runtime.tracker.stage(task_id, stage, on_done=after) as record:
            if record is None:
                return
            run(record)
        following = sent[0] if sent else None
        if following is None:  # a stage beside this one still runs: it sends the next step
            return
        for spec in [ACTOR_OF_STAGE[name] for name in following] or [FINALIZE]:
            self.send(spec, task_id)

    def fetch(self, task_id: str) -> None:
        """Download a recording given by URL."""
        self._stage(task_id, StageName.FETCH, self.runtime.stages.fetch)

    def preprocess(self, task_id: str) -> None:
        """Decode the upload."""
        self._stage(task_id, StageName.PREPROCESS, self.runtime.stages.preprocess)

    def transcribe(self, task_id: str) -> None:
        """Run ASR."""
        self._stage(task_id, StageName.TRANSCRIBE, self.runtime.stages.transcribe)

    def diarize(self, task_id: str) -> None:
        """Find who spoke when."""
        self._stage(task_id, StageName.DIARIZE, self.runtime.stages.diarize)

    def enhance(self, task_id: str) -> None:
        """Clean the transcript."""
        self._stage(task_id, StageName.ENHANCE, self.runtime.stages.enhance)

    def summarize(self, task_id: str) -> None:
        """Fill the task's template."""
        self._stage(task_id, StageName.SUMMARIZE, self.runtime.stages.summarize)

    def finalize(self, task_id: str) -> None:
        """Store result version 1 and complete the task."""
        tracker = self.runtime.tracker
        record = tracker.load(task_id)
        if record is None:
            return
        try:
            self.runtime.stages.finalize(record)
        except NotFoundError:
            if not tracker.vanished(record):
                raise

    def resummarize(self, task_id: str, job_id: str) -> None:
        """Run a re-summarization job once, then announce its version."""
        jobs = self.runtime.summary_jobs
        with jobs.job(task_id, job_id) as record:
            if record is None:
                return
            result = jobs.run(record, job_id)
        self.runtime.webhooks.announce_version(
            task_id, result.version, lambda tid, version: self.send(DELIVER_WEBHOOK, tid, version)
        )

    def announce_finish(self, task_id: str) -> None:
        """Queue the webhook of a task about to finish (the tracker's finish hook)."""
        self.runtime.webhooks.announce(task_id, lambda tid: self.send(DELIVER_WEBHOOK, tid, None))

    def deliver_webhook(self, task_id: str, version: int | None = None) -> None:
        """Make one delivery attempt of the task's webhook (the last one marks it failed)."""
        self.runtime.webhooks.deliver(task_id, final=self._final_attempt(), version=version)

    def deliver_deletion(self, task_id: str, callback_url: str, event_json: str) -> None:
        """Make one delivery attempt of a deleted task's ``task.deleted`` webhook."""
        del task_id  # bound into the log lines by the middleware
        self.runtime.webhooks.deliver_deletion(callback_url, event_json, final=self._final_attempt())

    def _final_attempt(self) -> bool:
        message = CurrentMessage.get_current_message()
        retries = message.options.get("retries", 0) if message is not None else 0
        return bool(retries >= self.runtime.settings.webhook.max_retries)


def register_actors(broker: RedisBroker, runtime: WorkerRuntime) -> ActorBodies:
    """Declare every actor of the table on ``broker``, bound to ``runtime``."""
    bodies = ActorBodies(runtime)
    for spec in ACTORS:
        declare = dramatiq.actor(actor_name=spec.name, broker=broker, **spec.options(runtime.settings))
        bodies.declared[spec.name] = declare(bodies.of(spec))
    runtime.tracker.before_finish(bodies.announce_finish)
    return bodies
