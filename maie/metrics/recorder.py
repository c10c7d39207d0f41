"""Adding to the cluster-wide series in Redis, from the workers (blocking) and the API (async).

A metric is never worth a task: a failed write is logged and dropped, never raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis
import redis.exceptions
import structlog

from maie.metrics.series import HistogramSeries, TaskOutcome
from maie.store.keys import METRICS_FAILURES_KEY, METRICS_STREAM_KEY, METRICS_TASKS_KEY

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["AsyncMetricsRecorder", "MetricsRecorder"]

log = structlog.get_logger(__name__)

#: Errors that mean the write did not happen; anything else is a bug and is raised.
_DROPPED = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ResponseError)


def _histogram_fields(series: HistogramSeries, value: float, label: str | None) -> tuple[str, str, str]:
    prefix = label or ""
    return f"{prefix}|{series.bucket_index(value)}", f"{prefix}|sum", f"{prefix}|count"


class MetricsRecorder:
    """Blocking recorder of one worker process, on the task store's Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def observe(self, series: HistogramSeries, value: float, label: str | None = None) -> None:
        """Add ``value`` to ``series`` (under ``label`` when the series has one)."""
        bucket, total, count = _histogram_fields(series, max(value, 0.0), label)
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hincrby(series.key, bucket, 1)
                pipe.hincrbyfloat(series.key, total, max(value, 0.0))
                pipe.hincrby(series.key, count, 1)
                pipe.execute()
        except _DROPPED as exc:
            log.warning("metrics.dropped", series=series.name, reason=str(exc))

    def task_finished(self, outcome: str, *, stage: str | None = None, error_code: str | None = None) -> None:
        """Count a task that reached ``outcome``; a failure is counted by stage and error code too."""
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hincrby(METRICS_TASKS_KEY, outcome, 1)
                if outcome == TaskOutcome.FAILED:
                    pipe.hincrby(
                        METRICS_FAILURES_KEY, f"{stage or 'none'}|{error_code or 'internal_error'}", 1
                    )
                pipe.execute()
        except _DROPPED as exc:
            log.warning("metrics.dropped", series="maie_tasks_total", reason=str(exc))


class AsyncMetricsRecorder:
    """Recorder of an API process, on the async task store's client."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def task_accepted(self, count: int = 1) -> None:
        """Count ``count`` tasks the API accepted and queued."""
        try:
            await self.client.hincrby(METRICS_TASKS_KEY, TaskOutcome.ACCEPTED, count)
        except _DROPPED as exc:
            log.warning("metrics.dropped", series="maie_tasks_total", reason=str(exc))

    async def observe(self, series: HistogramSeries, value: float, label: str | None = None) -> None:
        """Add ``value`` to ``series`` (under ``label`` when the series has one)."""
        bucket, total, count = _histogram_fields(series, max(value, 0.0), label)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hincrby(series.key, bucket, 1)
                pipe.hincrbyfloat(series.key, total, max(value, 0.0))
                pipe.hincrby(series.key, count, 1)
                await pipe.execute()
        except _DROPPED as exc:
            log.warning("metrics.dropped", series=series.name, reason=str(exc))

    async def stream_session(self, backend: str, outcome: str, *, audio_s: float = 0.0) -> None:
        """Count a live session that reached ``outcome``, and the seconds of audio it received."""
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hincrby(METRICS_STREAM_KEY, f"sessions|{backend}|{outcome}", 1)
                if audio_s > 0:
                    pipe.hincrbyfloat(METRICS_STREAM_KEY, f"audio_s|{backend}", audio_s)
                await pipe.execute()
        except _DROPPED as exc:
            log.warning("metrics.dropped", series="maie_stream_sessions_total", reason=str(exc))
