"""Reading the cluster-wide series at scrape time, for the API's ``/metrics``.

One pipelined round trip to Redis's MAIE database (task counts, histograms and worker heartbeats),
one to the broker's (messages waiting per queue) and one count of unfinished tasks in PostgreSQL
per scrape. When Redis cannot be read, ``maie_cluster_up`` is 0 and the other cluster series are
left out rather than reported as zero: a gap in a graph is honest, a drop to zero is not; so is
``maie_queue_depth`` while PostgreSQL cannot be read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from maie.broker import QUEUE_CPU, QUEUE_GPU
from maie.errors import StoreUnavailableError
from maie.metrics.series import HISTOGRAMS, HistogramSeries, TaskOutcome
from maie.store.keys import (
    METRICS_FAILURES_KEY,
    METRICS_STREAM_KEY,
    METRICS_TASKS_KEY,
    REDIS_DOWN,
    STREAM_SESSIONS_KEY,
    WORKERS_KEY,
    queue_key,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Mapping

    import redis.asyncio as aioredis
    from prometheus_client import Metric

__all__ = ["ClusterCollector", "ClusterSnapshot", "read_cluster"]

#: Queues whose waiting messages are reported.
QUEUES: Final = (QUEUE_CPU, QUEUE_GPU)


class ClusterSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The cluster-wide facts of one scrape."""

    #: Whether Redis could be read; when False every other field is empty.
    up: bool
    tasks: dict[str, int] = msgspec.field(default_factory=dict)
    failures: dict[str, int] = msgspec.field(default_factory=dict)
    #: Raw histogram hashes by series name.
    histograms: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)
    #: Unfinished tasks, from PostgreSQL; None when it could not be read.
    queue_depth: int | None = None
    workers_active: int = 0
    queue_messages: dict[str, int] = msgspec.field(default_factory=dict)
    #: Live-session counters (``sessions|<backend>|<outcome>``, ``audio_s|<backend>``).
    stream: dict[str, float] = msgspec.field(default_factory=dict)
    #: Live sessions open now, across processes.
    stream_open: int = 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _numbers(raw: Mapping[bytes | str, bytes | str]) -> dict[str, float]:
    return {_text(k): float(v) for k, v in raw.items()}


async def read_cluster(
    results: aioredis.Redis,
    broker: aioredis.Redis,
    *,
    queue_depth: Callable[[], Awaitable[int]],
    worker_window_s: float,
) -> ClusterSnapshot:
    """Read the cluster-wide series.

    Args:
        results: Client on Redis's MAIE database (``MAIE_REDIS_RESULTS_DB``).
        broker: Client on the broker's database.
        queue_depth: Counts unfinished tasks (the task store's, in PostgreSQL).
        worker_window_s: A worker counts as active if its heartbeat is this recent.
    """
    now = time.time()
    try:
        async with results.pipeline(transaction=False) as pipe:
            pipe.hgetall(METRICS_TASKS_KEY)
            pipe.hgetall(METRICS_FAILURES_KEY)
            for series in HISTOGRAMS:
                pipe.hgetall(series.key)
            pipe.zcount(WORKERS_KEY, now - worker_window_s, "+inf")
            pipe.hgetall(METRICS_STREAM_KEY)
            pipe.zcount(STREAM_SESSIONS_KEY, now, "+inf")
            replies = await pipe.execute()
        async with broker.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                pipe.llen(queue_key(queue))
            lengths = await pipe.execute()
    except REDIS_DOWN:
        return ClusterSnapshot(up=False)
    tasks, failures, *hists, workers, stream, stream_open = replies
    try:
        depth: int | None = await queue_depth()
    except StoreUnavailableError:
        depth = None
    return ClusterSnapshot(
        up=True,
        tasks={k: int(v) for k, v in _numbers(tasks).items()},
        failures={k: int(v) for k, v in _numbers(failures).items()},
        histograms={s.name: _numbers(h) for s, h in zip(HISTOGRAMS, hists, strict=True)},
        queue_depth=depth,
        workers_active=int(workers),
        queue_messages={q: int(n) for q, n in zip(QUEUES, lengths, strict=True)},
        stream=_numbers(stream),
        stream_open=int(stream_open),
    )


def _histogram(series: HistogramSeries, fields: Mapping[str, float]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        series.name, series.documentation, labels=[series.label] if series.label else []
    )
    labels = sorted({name.rpartition("|")[0] for name in fields})
    for label in labels:
        cumulative = 0.0
        buckets: list[tuple[str, float]] = []
        for index, bound in enumerate(series.buckets):
            cumulative += fields.get(f"{label}|{index}", 0.0)
            buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
        buckets.append(("+Inf", fields.get(f"{label}|count", 0.0)))
        family.add_metric([label] if series.label else [], buckets, fields.get(f"{label}|sum", 0.0))
    return family


class ClusterCollector(Collector):
    """Prometheus families of one :class:`ClusterSnapshot`."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """Yield the cluster-wide families."""
        snap = self.snapshot
        yield GaugeMetricFamily(
            "maie_cluster_up",
            "1 when the cluster-wide series could be read from Redis, else 0.",
            value=int(snap.up),
        )
        if not snap.up:
            return
        tasks = CounterMetricFamily(
            "maie_tasks", "Tasks by outcome: accepted by the API, complete, failed.", labels=["status"]
        )
        for outcome in (TaskOutcome.ACCEPTED, TaskOutcome.COMPLETE, TaskOutcome.FAILED):
            tasks.add_metric([outcome], snap.tasks.get(outcome, 0))
        yield tasks
        failures = CounterMetricFamily(
            "maie_task_failures",
            "Failed tasks by the stage that failed and the error code.",
            labels=["stage", "error_code"],
        )
        for key, count in sorted(snap.failures.items()):
            stage, _, code = key.partition("|")
            failures.add_metric([stage, code], count)
        yield failures
        for series in HISTOGRAMS:
            yield _histogram(series, snap.histograms.get(series.name, {}))
        if snap.queue_depth is not None:
            yield GaugeMetricFamily(
                "maie_queue_depth",
                "Unfinished tasks; submissions get 429 when it reaches MAIE_MAX_QUEUE_DEPTH.",
                value=snap.queue_depth,
            )
        messages = GaugeMetricFamily(
            "maie_queue_messages", "Stage messages waiting for a worker, by queue.", labels=["queue"]
        )
        for queue, count in snap.queue_messages.items():
            messages.add_metric([queue], count)
        yield messages
        yield GaugeMetricFamily(
            "maie_workers_active", "Workers whose heartbeat is newer than 60 s.", value=snap.workers_active
        )
        yield from _stream_families(snap)


def _stream_families(snap: ClusterSnapshot) -> Iterator[Metric]:
    """The live-session series: sessions by backend and outcome, audio seconds, sessions open."""
    sessions = CounterMetricFamily(
        "maie_stream_sessions",
        "Live sessions by backend and outcome: started, stored (as a task), not_stored.",
        labels=["backend", "outcome"],
    )
    audio = CounterMetricFamily(
        "maie_stream_audio_seconds",
        "Seconds of audio live sessions received, by backend.",
        labels=["backend"],
    )
    for key, value in sorted(snap.stream.items()):
        kind, _, rest = key.partition("|")
        if kind == "sessions":
            backend, _, outcome = rest.partition("|")
            sessions.add_metric([backend, outcome], value)
        elif kind == "audio_s":
            audio.add_metric([rest], value)
    yield sessions
    yield audio
    yield GaugeMetricFamily(
        "maie_stream_sessions_open", "Live sessions open now, across every process.", value=snap.stream_open
    )
