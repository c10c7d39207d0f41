"""The cluster-wide series as one API process sees them: it counts what it accepts, reads the rest.

Workers add to the series in Redis as stages finish (:mod:`maie.metrics.recorder`); any API process
reads them at scrape time (:func:`~maie.metrics.collector.read_cluster`), so every replica reports
the same values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from maie.metrics.collector import ClusterSnapshot, read_cluster
from maie.metrics.recorder import AsyncMetricsRecorder
from maie.store import WORKER_HEARTBEAT_WINDOW_S, async_reconnect

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from maie.config import Settings

__all__ = ["ApiMetrics"]


class ApiMetrics:
    """The cluster-wide series of one API process.

    Args:
        settings: The process's settings.
        results: The task store's Redis client (``MAIE_REDIS_RESULTS_DB``); not closed here.
        redis_url: The broker's Redis, whose queues are counted.
        queue_depth: Counts unfinished tasks (the task store's, in PostgreSQL).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        results: aioredis.Redis,
        redis_url: str,
        queue_depth: Callable[[], Awaitable[int]],
    ) -> None:
        self.settings = settings
        self.queue_depth = queue_depth
        self.recorder = AsyncMetricsRecorder(results)
        self.results = results
        self.broker = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_timeout=5, **async_reconnect()
        )

    async def task_accepted(self, count: int = 1) -> None:
        """Count ``count`` tasks this process accepted and queued."""
        await self.recorder.task_accepted(count)

    async def snapshot(self) -> ClusterSnapshot:
        """Read the cluster-wide series from Redis."""
        return await read_cluster(
            self.results,
            self.broker,
            queue_depth=self.queue_depth,
            worker_window_s=WORKER_HEARTBEAT_WINDOW_S,
        )

    async def close(self) -> None:
        """Close the broker-database client (the results client belongs to the task store)."""
        await self.broker.aclose()
