"""Waiting for tasks to finish, for requests that answer with the result (the OpenAI routes).

One :class:`TaskWaiter` per API process listens on the workers' announcements of finished tasks
(:mod:`maie.store.finished`, one pub/sub connection for the whole process) and wakes the requests
waiting for those tasks, which then read the record once. No request polls: a waiting request
costs one read when it starts, one when its task finishes, and one every :data:`RECHECK_S` as a
safety net, because pub/sub delivers only to those listening at that moment (a notice sent while
the subscription reconnects after a Redis restart is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog

from maie.store.keys import FINISHED_CHANNEL, REDIS_DOWN

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from maie.schemas import TaskRecord
    from maie.store import AsyncTaskStore

__all__ = ["RECHECK_S", "TaskWaiter"]

log = structlog.get_logger(__name__)

#: Seconds between two looks at a waited-for task when no announcement came.
RECHECK_S = 2.0
#: Seconds the listener pauses before subscribing again after Redis went away.
_RESUBSCRIBE_S = 1.0
#: Seconds a first waiter gives the subscription to start before it relies on rechecks alone.
_SUBSCRIBE_WAIT_S = 2.0


class TaskWaiter:
    """Wakes requests when their task finishes.

    Args:
        store: Where records are read.
        client: A client on the results database, where workers publish (the task store's).
        recheck_s: Seconds between two looks at a task without an announcement.
    """

    def __init__(
        self, store: AsyncTaskStore, client: aioredis.Redis, *, recheck_s: float = RECHECK_S
    ) -> None:
        self.store = store
        self.client = client
        self.recheck_s = recheck_s
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def wait(self, task_id: str, timeout_s: float) -> TaskRecord:
        """The task's record once it is COMPLETE or FAILED, or as it is after ``timeout_s``.

        Raises:
            NotFoundError: if the task disappears.
            StoreUnavailableError: if Redis cannot be reached.
        """
        event = asyncio.Event()
        self._waiting.setdefault(task_id, set()).add(event)
        self._listen()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._subscribed.wait(), min(_SUBSCRIBE_WAIT_S, timeout_s))
            while True:
                # Cleared before the read: an announcement arriving after it is not missed.
                event.clear()
                record = await self.store.get(task_id)
                remaining = deadline - loop.time()
                if record.status.terminal or remaining <= 0:
                    return record
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, self.recheck_s))
        finally:
            waiters = self._waiting.get(task_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiting[task_id]

    @property
    def waiting(self) -> int:
        """Requests waiting now."""
        return sum(len(events) for events in self._waiting.values())

    def _listen(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._run(), name="maie-task-waiter")

    async def _run(self) -> None:
        while True:
            try:
                await self._subscribe_and_dispatch()
            except REDIS_DOWN as exc:
                self._subscribed.clear()
                log.warning("waiter.subscription_lost", reason=str(exc), retry_in_s=_RESUBSCRIBE_S)
                await asyncio.sleep(_RESUBSCRIBE_S)

    async def _subscribe_and_dispatch(self) -> None:
        async with self.client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(FINISHED_CHANNEL)
            self._subscribed.set()
            while True:
                # A timeout of its own: the store's client has a socket timeout, and an idle
                # subscription would trip it.
                message = await pubsub.get_message(timeout=1.0)
                if message is None or message.get("type") != "message":
                    continue
                data = message["data"]
                task_id = data.decode() if isinstance(data, bytes) else str(data)
                for event in self._waiting.get(task_id, ()):
                    event.set()

    async def close(self) -> None:
        """Stop listening."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
