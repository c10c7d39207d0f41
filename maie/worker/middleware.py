"""Dramatiq middleware of the worker: heartbeat for /health, and failing a task whose message gave up."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import structlog
from dramatiq.middleware import Middleware

from maie.errors import StoreUnavailableError

if TYPE_CHECKING:
    import dramatiq

    from maie.schemas import StageName
    from maie.store import TaskStore
    from maie.worker.tracker import StageTracker

__all__ = ["HEARTBEAT_INTERVAL_S", "Heartbeat", "LogContext", "TaskFailure"]

log = structlog.get_logger(__name__)

#: Seconds between two heartbeats; /health counts a worker active for 60 s after one.
HEARTBEAT_INTERVAL_S = 10.0


class Heartbeat(Middleware):
    """Writes this worker's id and time to Redis every few seconds while it runs."""

    def __init__(self, store: TaskStore, worker_id: str, *, interval_s: float = HEARTBEAT_INTERVAL_S) -> None:
        self.store = store
        self.worker_id = worker_id
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Start beating."""
        self._thread = threading.Thread(target=self._beat, name="maie-heartbeat", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Stop beating and say goodbye, so /health stops counting this worker at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.store.retire(self.worker_id)
        except StoreUnavailableError:
            log.warning("worker.retire_failed")

    def _beat(self) -> None:
        while True:
            try:
                self.store.heartbeat(self.worker_id)
            except StoreUnavailableError:
                log.warning("worker.heartbeat_failed")
            if self._stop.wait(self.interval_s):
                return


class TaskFailure(Middleware):
    """Fails the task of a message the broker gave up on (permanent error, or retries used up)."""

    def __init__(self, tracker: StageTracker, stage_of_actor: dict[str, StageName | None]) -> None:
        self.tracker = tracker
        self.stage_of_actor = stage_of_actor

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,  # noqa: ANN401 - Dramatiq's hook signature
        exception: BaseException | None = None,
    ) -> None:
        """Runs after Retries (it is registered before it; after_* hooks run in reverse order).

        A message Retries marked failed (permanent error, or retries used up) will not come back.
        """
        if exception is None or not message.failed or not message.args:
            return
        if message.actor_name not in self.stage_of_actor:
            return  # not a pipeline step (a webhook delivery): its failure does not fail the task
        task_id = str(message.args[0])
        with structlog.contextvars.bound_contextvars(task_id=task_id):
            self.tracker.fail(task_id, self.stage_of_actor.get(message.actor_name), exception)


class LogContext(Middleware):
    """Binds the task id (and message id) into every log line written while a message runs."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Bind the message's task id."""
        structlog.contextvars.clear_contextvars()
        task_id = str(message.args[0]) if message.args else None
        structlog.contextvars.bind_contextvars(task_id=task_id, actor=message.actor_name)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,  # noqa: ANN401 - Dramatiq's hook signature
        exception: BaseException | None = None,
    ) -> None:
        """Forget the message's context."""
        structlog.contextvars.clear_contextvars()

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Forget the context of a skipped message."""
        structlog.contextvars.clear_contextvars()
