"""The worker's own Prometheus endpoint, and the queue-wait series it adds to the cluster's.

Each worker process can serve ``/metrics`` on ``MAIE_WORKER_METRICS_HOST:MAIE_WORKER_METRICS_PORT``
(off by default; compose.yaml turns it on) with what only this process knows: messages it handled
by actor and outcome, how many run now, how long they took, and the process's CPU, memory and file
descriptors. Scraping it tells a dead or stuck worker from an idle one. The task series that
describe the whole deployment (``maie_tasks_total``, ``maie_stage_seconds``, ...) are *not*
repeated here: they live in Redis and the API serves them, so summing both never double-counts.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import structlog
from dramatiq.common import q_name
from dramatiq.middleware import Middleware
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from maie import __version__
from maie.metrics import QUEUE_WAIT_SECONDS, STAGE_SECONDS

if TYPE_CHECKING:
    from collections.abc import Iterable
    from wsgiref.simple_server import WSGIServer

    import dramatiq

    from maie.metrics import MetricsRecorder

__all__ = ["WorkerMetrics"]

log = structlog.get_logger(__name__)


class WorkerMetrics(Middleware):
    """Counts this worker's messages for its own endpoint, and each message's queue wait cluster-wide.

    Args:
        recorder: Where the queue wait goes (Redis, cluster-wide).
        worker_id: This worker's id, reported in ``maie_worker_info``.
        queues: Queues this worker consumes.
        host: Bind address of the endpoint.
        port: Port of the endpoint; 0 serves nothing (the counters are still kept).
    """

    def __init__(
        self, recorder: MetricsRecorder, *, worker_id: str, queues: Iterable[str], host: str, port: int
    ) -> None:
        self.recorder = recorder
        self.host = host
        self.port = port
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        Info("maie_worker", "This worker process.", registry=self.registry).info(
            {"worker_id": worker_id, "queues": ",".join(sorted(queues)), "version": __version__}
        )
        self.messages = Counter(
            "maie_worker_messages",
            "Messages this worker handled, by actor and outcome (done, retried, failed, skipped).",
            ["actor", "outcome"],
            registry=self.registry,
        )
        self.running = Gauge(
            "maie_worker_messages_in_progress",
            "Messages running now, by actor.",
            ["actor"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "maie_worker_message_seconds",
            "Seconds this worker spent on a message, by actor, whatever its outcome.",
            ["actor"],
            buckets=STAGE_SECONDS.buckets,
            registry=self.registry,
        )
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Serve the endpoint, if a port is configured; a port in use is logged, not fatal."""
        if not self.port:
            return
        try:
            self._server, _ = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            log.error("worker.metrics_unavailable", host=self.host, port=self.port, reason=str(exc))  # noqa: TRY400 - the reason says it all
            return
        log.info("worker.metrics_serving", url=f"http://{self.host}:{self.port}/metrics")

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Start the message's clock; record how long a first attempt waited in its queue."""
        with self._lock:
            self._started[message.message_id] = time.perf_counter()
        self.running.labels(message.actor_name).inc()
        if not message.options.get("retries"):  # a retry's wait includes its back-off
            waited = time.time() - message.message_timestamp / 1000
            self.recorder.observe(QUEUE_WAIT_SECONDS, waited, q_name(message.queue_name))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,  # noqa: ANN401 - Dramatiq's hook signature
        exception: BaseException | None = None,
    ) -> None:
        """Count the message by outcome; runs after Retries, which marks a message it gave up on."""
        outcome = "done"
        if exception is not None:
            outcome = "failed" if message.failed else "retried"
        self._finish(message, outcome)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Count a skipped message."""
        self._finish(message, "skipped")

    def _finish(self, message: dramatiq.MessageProxy, outcome: str) -> None:
        with self._lock:
            started = self._started.pop(message.message_id, None)
        self.running.labels(message.actor_name).dec()
        self.messages.labels(message.actor_name, outcome).inc()
        if started is not None:
            self.seconds.labels(message.actor_name).observe(time.perf_counter() - started)
