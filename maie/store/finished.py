"""Announcements of finished tasks, so that whoever waits for a result hears of it at once.

A worker publishes a task's id on :data:`~maie.store.keys.FINISHED_CHANNEL` (Redis pub/sub, in the
results database) right after it marks the task COMPLETE or FAILED. An API process that holds a
request open until a task finishes (the OpenAI-compatible routes) subscribes once and wakes the
request whose task it is, instead of every such request polling the store. Pub/sub delivers at
most once and only to those listening at that moment (a subscriber that reconnects misses what
was said meanwhile), so waiters also look at the record now and then by themselves
(:mod:`maie.api.waiting`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from maie.store.keys import FINISHED_CHANNEL, REDIS_DOWN

if TYPE_CHECKING:
    import redis

__all__ = ["FinishedNotices"]

log = structlog.get_logger(__name__)


class FinishedNotices:
    """The worker's side: publish the id of each task it finished (blocking client).

    Args:
        client: A client on the results database (the task store's).
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def publish(self, task_id: str) -> None:
        """Announce that ``task_id`` finished; a Redis hiccup is logged, never raised (waiters look again)."""
        try:
            self.client.publish(FINISHED_CHANNEL, task_id)
        except REDIS_DOWN as exc:
            log.warning("task.finished_notice_dropped", reason=str(exc))
