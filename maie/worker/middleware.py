"""Dramatiq middleware of the worker: heartbeat for /health, and failing a task whose message gave up."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import structlog
from dramatiq.middleware import Middleware

from maie.broker import REQUEST_ID_OPTION
from maie.errors import StoreUnavailableError
from maie.store import REDIS_DOWN

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import dramatiq

    from maie.schemas import StageName
    from maie.store import TaskStore
    from maie.worker.tracker import StageTracker

__all__ = ["HEARTBEAT_INTERVAL_S", "AwaitServer", "Heartbeat", "LogContext", "TaskFailure"]

log = structlog.get_logger(__name__)

#: Seconds between two heartbeats; /health counts a worker active for 60 s after one.
HEARTBEAT_INTERVAL_S = 10.0


class Heartbeat(Middleware):
    """Writes this worker's id and time to Redis every few seconds while it runs.

    With ``models``, each beat also writes which models the worker holds in memory (for
    ``GET /v1/models``); :meth:`wake` beats at once, so a load or unload is seen without waiting.
    """

    def __init__(
        self,
        store: TaskStore,
        worker_id: str,
        *,
        interval_s: float = HEARTBEAT_INTERVAL_S,
        models: Callable[[], list[str]] | None = None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.interval_s = interval_s
        self.models = models
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Beat now rather than at the next interval (the loaded models changed)."""
        self._wake.set()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Start beating."""
        self._thread = threading.Thread(target=self._beat, name="maie-heartbeat", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Stop beating and say goodbye, so /health stops counting this worker at once."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.store.retire(self.worker_id)
        except StoreUnavailableError:
            log.warning("worker.retire_failed")

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self.store.heartbeat(self.worker_id, models=None if self.models is None else self.models())
            except StoreUnavailableError:
                log.warning("worker.heartbeat_failed")
            self._wake.wait(self.interval_s)
            self._wake.clear()


class TaskFailure(Middleware):
    """Fails the task of a message the broker gave up on (permanent error, or retries used up)."""

    def __init__(
        self,
        tracker: StageTracker,
        stage_of_actor: dict[str, StageName | None],
        *,
        job_failures: Mapping[str, Callable[[str, str, BaseException], None]] | None = None,
    ) -> None:
        self.tracker = tracker
        self.stage_of_actor = stage_of_actor
        #: Actors whose messages are jobs on a finished task (task id, job id): their failure
        #: fails the job, never the task.
        self.job_failures = job_failures or {}

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
        task_id = str(message.args[0])
        if message.actor_name in self.job_failures and len(message.args) > 1:
            with structlog.contextvars.bound_contextvars(task_id=task_id):
                self.job_failures[message.actor_name](task_id, str(message.args[1]), exception)
            return
        if message.actor_name not in self.stage_of_actor:
            return  # not a pipeline step (a webhook delivery): its failure does not fail the task
        with structlog.contextvars.bound_contextvars(task_id=task_id):
            self.tracker.fail(task_id, self.stage_of_actor.get(message.actor_name), exception)


class LogContext(Middleware):
    """Binds the task id and request id into every log line written while a message runs.

    The request id (of the HTTP request that created the task) comes in the message options and
    is stamped onto every message sent while this one runs, so it follows the task to its end.
    """

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Bind the message's task id and request id."""
        structlog.contextvars.clear_contextvars()
        task_id = str(message.args[0]) if message.args else None
        structlog.contextvars.bind_contextvars(task_id=task_id, actor=message.actor_name)
        request_id = message.options.get(REQUEST_ID_OPTION)
        if request_id:
            structlog.contextvars.bind_contextvars(request_id=str(request_id))

    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None
    ) -> None:
        """Carry the running message's request id on to the messages it sends."""
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id and REQUEST_ID_OPTION not in message.options:
            message.options[REQUEST_ID_OPTION] = request_id

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


class AwaitServer(Middleware):
    """Holds a failed message until a server it needs answers again, so that its retry is not lost.

    A stage that fails because Redis or PostgreSQL went away (a restart, a failover) raises;
    Dramatiq's Retries then enqueues the retry, which needs Redis, and TaskFailure records a
    final failure, which needs PostgreSQL. Without this, that enqueue fails (the message is
    acknowledged once Redis is back and the task is stranded in a running status for ever), or
    the retries run out while PostgreSQL restarts. Dramatiq runs ``after_*`` hooks in reverse
    order, so added last this runs before Retries and TaskFailure: it waits, polling, until the
    server answers or the worker stops, so an outage costs a message one retry, however long it
    lasts. A stopped worker leaves the message unacknowledged; another worker takes it over
    after the heartbeat timeout.

    Args:
        name: ``redis`` or ``postgres``, for the log events ``worker.<name>_unreachable`` and
            ``worker.<name>_back``.
        ping: Raises (or returns False) while the server cannot be reached.
        stop: Set when the worker is stopping.
        interval_s: Seconds between two pings.
    """

    def __init__(
        self, name: str, ping: Callable[[], object], stop: threading.Event, *, interval_s: float = 1.0
    ) -> None:
        self.name = name
        self.ping = ping
        self.stop = stop
        self.interval_s = interval_s
        self._unreachable, self._back = f"worker.{name}_unreachable", f"worker.{name}_back"

    def _answers(self) -> bool:
        try:
            return bool(self.ping())
        except (*REDIS_DOWN, StoreUnavailableError):
            return False

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,  # noqa: ANN401 - Dramatiq's hook signature
        exception: BaseException | None = None,
    ) -> None:
        """After a failure, wait for the server before Retries and TaskFailure need it."""
        if exception is None or self._answers():
            return
        started = time.monotonic()
        log.warning(self._unreachable, actor=message.actor_name, hint=f"waiting for {self.name} to retry")
        while not self.stop.wait(self.interval_s):
            if self._answers():
                log.info(self._back, waited_s=round(time.monotonic() - started, 1))
                return
        log.warning(
            "worker.wait_abandoned",
            server=self.name,
            reason="worker stopping; the message will be redelivered",
        )
