"""Run one worker process: consume MAIE's queues until SIGTERM or Ctrl-C."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from typing import TYPE_CHECKING

import dramatiq
import structlog
from dramatiq.middleware import AgeLimit, Retries

from maie.actor_table import RESUMMARIZE
from maie.broker import QUEUE_CPU, QUEUE_GPU, build_broker
from maie.stop_signal import StopSignal
from maie.store import TaskStore, results_url
from maie.worker.actors import STAGE_OF_ACTOR, register_actors
from maie.worker.metrics import WorkerMetrics
from maie.worker.middleware import AwaitServer, Heartbeat, LogContext, TaskFailure
from maie.worker.retention import RetentionPurge
from maie.worker.runtime import WorkerRuntime

if TYPE_CHECKING:
    from collections.abc import Iterable

    from maie.config import Settings

__all__ = ["run_worker"]

log = structlog.get_logger(__name__)


def run_worker(
    settings: Settings, redis_url: str, database_url: str, *, queues: Iterable[str] | None = None
) -> None:
    """Consume ``queues`` (default: all of MAIE's) until a stop signal arrives.

    On SIGTERM/SIGINT the worker stops taking messages, lets running stages finish for up to
    ``MAIE_WORKER_STOP_TIMEOUT_S``, hands prefetched messages back to the queue, and exits.
    """
    queue_names = set(queues or (QUEUE_CPU, QUEUE_GPU))
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    store = TaskStore.from_urls(
        database_url, results_url(redis_url, settings.redis.results_db), settings=settings.database
    )
    runtime = WorkerRuntime(settings, store)
    runtime.sandbox.start()
    broker = build_broker(settings, redis_url)
    stop = threading.Event()
    # Dramatiq runs before_* hooks in list order and after_* hooks in reverse. The log context is
    # bound first and cleared last; TaskFailure and the metrics' outcome come after Retries has
    # decided whether the message failed; AwaitServer holds a failure until Retries can enqueue
    # (Redis) and TaskFailure can record (PostgreSQL).
    broker.add_middleware(LogContext(), before=AgeLimit)
    job_failures = {RESUMMARIZE.name: runtime.summary_jobs.fail}
    broker.add_middleware(
        TaskFailure(runtime.tracker, STAGE_OF_ACTOR, job_failures=job_failures), before=Retries
    )
    broker.add_middleware(
        WorkerMetrics(
            runtime.metrics,
            worker_id=worker_id,
            queues=queue_names,
            host=settings.worker.worker_metrics_host,
            port=settings.worker.worker_metrics_port,
        ),
        before=Retries,
    )
    heartbeat = Heartbeat(store, worker_id, models=runtime.models.labels)
    runtime.models.on_change(heartbeat.wake)
    broker.add_middleware(heartbeat)
    broker.add_middleware(AwaitServer("redis", broker.client.ping, stop))
    broker.add_middleware(AwaitServer("postgres", store.ping, stop))
    retention = settings.retention
    if retention.days is not None:
        broker.add_middleware(
            RetentionPurge(
                store, settings.storage.data_dir, days=retention.days, interval_s=retention.interval_s
            )
        )
    register_actors(broker, runtime)

    with StopSignal() as signals:
        worker = dramatiq.Worker(
            broker,
            queues=queue_names,
            worker_threads=settings.worker.worker_threads,
            worker_timeout=settings.worker.worker_poll_ms,
        )
        worker.start()
        log.info(
            "worker.started", worker_id=worker_id, queues=sorted(queue_names), threads=worker.worker_threads
        )
        signals.wait()
        # Set here, in the main thread after the handler returned: a handler must take no lock.
        stop.set()
        log.info("worker.stopping")
        worker.stop(timeout=settings.worker.worker_stop_timeout_s * 1000)  # a second signal changes nothing
    runtime.close()
    broker.close()
    log.info("worker.stopped")
