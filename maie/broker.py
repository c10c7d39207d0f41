"""Dramatiq broker set-up shared by the API (which enqueues) and the worker (which consumes).

The broker lives in the database named by the Redis URL; the task store uses
``MAIE_REDIS_RESULTS_DB``. Messages carry a task id, never audio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

if TYPE_CHECKING:
    from maie.config import Settings

__all__ = ["NAMESPACE", "QUEUE_CPU", "QUEUE_GPU", "REQUEST_ID_OPTION", "build_broker", "stage_message"]

#: Queue of CPU stages (preprocess, finalize); CPU workers consume it.
QUEUE_CPU = "maie.cpu"
#: Queue of model stages (ASR, LLM); GPU workers consume it.
QUEUE_GPU = "maie.gpu"
#: Prefix of the broker's Redis keys, apart from other Dramatiq users of the same server.
NAMESPACE = "maie-dramatiq"
#: Message option carrying the id of the HTTP request that created the task, for the worker's logs.
REQUEST_ID_OPTION = "request_id"


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
    # Dramatiq leaves RedisBroker.__init__ unannotated.
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=redis_url,
        namespace=NAMESPACE,
        middleware=middleware,
        heartbeat_timeout=worker.worker_heartbeat_timeout_s * 1000,
        maintenance_chance=worker.worker_requeue_check_per_million,
    )


def stage_message(
    actor_name: str, queue_name: str, task_id: str, *, request_id: str | None = None
) -> dramatiq.Message[None]:
    """A message for the actor ``actor_name`` about ``task_id``, built without importing the actor.

    The API uses it to start a pipeline without loading the worker's code. ``request_id`` rides
    along in the message options; the worker binds it into its log lines and passes it on to the
    task's next messages.
    """
    return dramatiq.Message(
        queue_name=queue_name,
        actor_name=actor_name,
        args=(task_id,),
        kwargs={},
        options={REQUEST_ID_OPTION: request_id} if request_id else {},
    )
