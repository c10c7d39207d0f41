"""Dramatiq broker set-up shared by the API (which enqueues) and the worker (which consumes).

The broker lives in the database named by the Redis URL; the task store uses
``MAIE_REDIS_RESULTS_DB``. Messages carry a task id, never audio.
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING

import dramatiq
import structlog
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from maie.store.keys import BROKER_NAMESPACE

if TYPE_CHECKING:
    from maie.config import Settings

__all__ = [
    "QUEUE_CPU",
    "QUEUE_GPU",
    "REQUEST_ID_OPTION",
    "RecoveringRedisBroker",
    "build_broker",
    "stage_message",
]

log = structlog.get_logger(__name__)

#: Queue of CPU stages (preprocess, finalize); CPU workers consume it.
QUEUE_CPU = "maie.cpu"
#: Queue of model stages (ASR, LLM); GPU workers consume it.
QUEUE_GPU = "maie.gpu"
#: Message option carrying the id of the HTTP request that created the task, for the worker's logs.
REQUEST_ID_OPTION = "request_id"


class _RecoveringConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, telling its broker when Redis went away."""

    broker: RecoveringRedisBroker

    def __next__(self) -> dramatiq.MessageProxy | None:
        try:
            message: dramatiq.MessageProxy | None = super().__next__()  # type: ignore[no-untyped-call]
        except ConnectionClosed:
            self.broker.outage_seen()
            raise
        return message


class RecoveringRedisBroker(RedisBroker):
    """A Redis broker that hands back the messages a Redis outage strands in this worker.

    Dramatiq moves fetched messages into a per-worker "acks" set and holds them in memory until a
    worker thread runs them. When a consumer hits a connection error, Dramatiq drops what it held in
    memory (prefetched and delayed messages) and starts a new consumer under the same worker id, so
    those messages stay in the acks set of a worker that is alive and keeps its heartbeat fresh:
    nothing ever hands them back, and their tasks hang (upstream, such messages come back only once
    their worker's heartbeat goes stale: https://github.com/Bogdanp/dramatiq/issues/527).

    So once a consumer saw Redis go away, the next fetch first pings Redis and, when it answers,
    gives this worker a new id, then fetches under that id. The old id's heartbeat then goes
    stale and, ``MAIE_WORKER_HEARTBEAT_TIMEOUT_S`` later, broker maintenance returns its
    unacknowledged messages to their queues. A message that was running through the outage may
    then run twice; MAIE's actors are idempotent, so that costs time only.

    Recovery is decided on a round trip to Redis, never on a consumer merely returning: a
    consumer whose prefetch is full returns without touching Redis, and counting that as recovery
    logged ``broker.recovered_after_outage`` over and over while Redis was still down.
    """

    def __init__(self, **parameters: object) -> None:
        super().__init__(**parameters)  # type: ignore[no-untyped-call]  # Dramatiq leaves it unannotated
        self._outage = threading.Event()
        self._rotate_lock = threading.Lock()

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        """Consumers that report outages to this broker."""
        return _RecoveringConsumer

    def outage_seen(self) -> None:
        """A consumer could not reach Redis."""
        self._outage.set()

    def do_fetch(self, queue_name: str, count: int) -> list[bytes]:
        """Fetch up to ``count`` messages of ``queue_name``; after an outage, recover first.

        Raises:
            redis.exceptions.ConnectionError: while Redis cannot be reached (the consumer turns it
                into Dramatiq's ``ConnectionClosed``).
        """
        if self._outage.is_set():
            self.client.ping()  # raises while Redis is still away
            self.reconnected()
        fetched: list[bytes] = self._dispatch("fetch")(queue_name, count)  # type: ignore[no-untyped-call]
        return fetched

    def reconnected(self) -> None:
        """Redis answered: if an outage came before, take a new worker id (once per outage)."""
        if not self._outage.is_set():
            return
        with self._rotate_lock:
            if not self._outage.is_set():
                return
            old, self.broker_id = self.broker_id, str(uuid.uuid4())
            self._outage.clear()
        log.warning(
            "broker.recovered_after_outage",
            old_worker_id=old,
            new_worker_id=self.broker_id,
            hint="messages held during the outage return to their queues after the heartbeat timeout",
        )


def build_broker(settings: Settings, redis_url: str) -> RedisBroker:
    """Create the Redis broker with MAIE's middleware and redelivery settings.

    A worker killed mid-task (SIGKILL, power loss) leaves its message unacknowledged. Dramatiq hands
    such messages back to the queue when another worker's broker maintenance finds the dead
    worker's heartbeat older than ``heartbeat_timeout``. Maintenance runs on a random fraction of
    broker commands (``maintenance_chance`` per million); MAIE raises that fraction from Dramatiq's
    0.1 % to 1 %, so an idle worker polling its four queues every 100 ms (``MAIE_WORKER_POLL_MS``)
    finds a dead worker's messages within about ``heartbeat_timeout`` + 3 s rather than minutes.
    """
    worker = settings.worker
    middleware = [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=worker.max_retries,
            min_backoff=worker.retry_min_backoff_ms,
            max_backoff=worker.retry_max_backoff_ms,
        ),
        CurrentMessage(),
    ]
    return RecoveringRedisBroker(
        url=redis_url,
        namespace=BROKER_NAMESPACE,
        middleware=middleware,
        heartbeat_timeout=worker.worker_heartbeat_timeout_s * 1000,
        maintenance_chance=worker.worker_requeue_check_per_million,
    )


def stage_message(
    actor_name: str, queue_name: str, task_id: str, *more: str, request_id: str | None = None
) -> dramatiq.Message[None]:
    """A message for the actor ``actor_name`` about ``task_id``, built without importing the actor.

    The API uses it to start a pipeline without loading the worker's code. ``request_id`` rides
    along in the message options; the worker binds it into its log lines and passes it on to the
    task's next messages.
    """
    return dramatiq.Message(
        queue_name=queue_name,
        actor_name=actor_name,
        args=(task_id, *more),
        kwargs={},
        options={REQUEST_ID_OPTION: request_id} if request_id else {},
    )
