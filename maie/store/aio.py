"""The async task store used by the API."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from maie.errors import ConflictError, NotFoundError
from maie.schemas import BatchRecord, ResultVersion, ResultVersionInfo, StageRecord, TaskRecord
from maie.store import task_index
from maie.store.keys import (
    ACTIVE_KEY,
    ADMISSION_KEY,
    ADMIT_LUA,
    REDIS_DOWN,
    RELEASE_LUA,
    WORKERS_KEY,
    Updated,
    async_reconnect,
    batch_key,
    decode,
    decode_optional,
    encoder,
    result_key,
    task_key,
    unavailable,
    worker_models_key,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection

__all__ = ["WORKER_HEARTBEAT_WINDOW_S", "AsyncTaskStore"]

T = TypeVar("T")

#: A worker counts as active (``/health``, ``maie_workers_active``) if its heartbeat is newer than this.
WORKER_HEARTBEAT_WINDOW_S = 60.0


class AsyncTaskStore:
    """Non-blocking store used by the API."""

    def __init__(self, client: aioredis.Redis, *, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self._release_script = client.register_script(RELEASE_LUA)
        self._admit_script = client.register_script(ADMIT_LUA)

    @classmethod
    def from_url(cls, url: str, *, ttl_s: int) -> AsyncTaskStore:
        """Open a pooled client on the results database URL (no I/O until first use)."""
        client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, **async_reconnect())
        return cls(client, ttl_s=ttl_s)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except REDIS_DOWN as exc:
            raise unavailable(exc) from exc

    async def ping(self) -> bool:
        """Whether Redis answers."""
        try:
            return bool(await self.client.ping())
        except REDIS_DOWN:
            return False

    async def create(self, record: TaskRecord, *, slots: Collection[str] = ()) -> None:
        """Store a new task and count it as active, in one transaction that frees its ``slots``."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(task_key(record.task_id), encoder.encode(record), ex=self.ttl_s, nx=True)
            pipe.zadd(ACTIVE_KEY, {record.task_id: record.submitted_at.timestamp()})
            if slots:
                pipe.zrem(ADMISSION_KEY, *slots)
            task_index.add(pipe, record, ttl_s=self.ttl_s)
            await self._call(pipe.execute())

    async def hold_slots(self, slots: Collection[str], *, limit: int, hold_s: float) -> int | None:
        """Hold queue ``slots`` for submissions being received, if there is room under ``limit``.

        Unfinished tasks and the slots other submissions hold count against the limit, checked and
        taken in one Lua call, so concurrent submissions cannot overshoot it. A slot is freed when
        its task is stored (:meth:`create`), by :meth:`free_slots`, or ``hold_s`` seconds later.

        Returns:
            None when the slots are held; else how many are in use (unfinished tasks plus held).
        """
        now = time.time()
        used = await self._call(
            self._admit_script(
                keys=[ACTIVE_KEY, ADMISSION_KEY], args=[now, now - self.ttl_s, limit, now + hold_s, *slots]
            )
        )
        return None if int(used) < 0 else int(used)

    async def free_slots(self, slots: Collection[str]) -> None:
        """Give back queue slots a submission no longer needs (freed ones are ignored)."""
        if slots:
            await self._call(self.client.zrem(ADMISSION_KEY, *slots))

    async def update(self, task_id: str, change: Callable[[TaskRecord], T]) -> Updated[T]:
        """Apply ``change`` to the stored record atomically (optimistic WATCH/MULTI).

        ``change`` may run more than once if another writer got there first; an exception it raises
        leaves the record as it was. What its last run returns comes back with the record.
        """
        key = task_key(task_id)
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await self._call(pipe.watch(key))
                    record = decode(await self._call(pipe.get(key)), TaskRecord, "task")
                    value = change(record)
                    pipe.multi()  # type: ignore[no-untyped-call]  # unannotated in redis.asyncio
                    pipe.set(key, encoder.encode(record), ex=self.ttl_s)
                    await self._call(pipe.execute())
                except redis.exceptions.WatchError:
                    continue
                return Updated(record, value)

    async def add_job(self, task_id: str, job: StageRecord, *, tenant: str) -> TaskRecord:
        """Append a re-summarization job's stage to a finished task of ``tenant`` with a result, atomically.

        Raises:
            NotFoundError: if the task does not exist or belongs to another tenant.
            ConflictError: if the task has no result to summarize (not finished, or failed before
                its transcript).
        """

        def append(record: TaskRecord) -> None:
            if record.tenant != tenant:
                raise NotFoundError(f"task {task_id} not found")
            if not record.has_result:
                raise ConflictError(
                    f"task {task_id} is {record.status.value} and has no transcript yet; a task can be "
                    "summarized again once it is COMPLETE (or FAILED after its transcription)"
                    if not record.status.terminal
                    else f"task {task_id} failed before its transcript was made ({record.failed_stage}); "
                    "there is nothing to summarize: submit the recording again"
                )
            record.stages.append(job)

        return (await self.update(task_id, append)).record

    async def remove_job(self, task_id: str, job_id: str) -> None:
        """Take back a job whose message could not be queued, so no stage waits for ever."""

        def drop(record: TaskRecord) -> None:
            record.stages = [s for s in record.stages if s.job_id != job_id]

        await self.update(task_id, drop)

    async def discard(self, task_id: str) -> None:
        """Remove a task that could not be queued, so nothing half-made stays behind."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(task_key(task_id))
            pipe.zrem(ACTIVE_KEY, task_id)
            await self._call(pipe.execute())

    async def get(self, task_id: str) -> TaskRecord:
        """Return the task record.

        Raises:
            NotFoundError: if there is no such task (or it expired).
            StoreUnavailableError: if Redis cannot be reached.
        """
        return decode(await self._call(self.client.get(task_key(task_id))), TaskRecord, "task")

    async def get_result(self, task_id: str, version: int) -> ResultVersion | None:
        """Return result version ``version``, or None."""
        data = await self._call(self.client.get(result_key(task_id, version)))
        return decode_optional(data, ResultVersion)

    async def get_many(self, task_ids: Collection[str]) -> list[TaskRecord | None]:
        """The records of ``task_ids`` in order; None where a task is gone."""
        if not task_ids:
            return []
        data = await self._call(self.client.mget([task_key(t) for t in task_ids]))
        return [decode_optional(item, TaskRecord) for item in data]

    async def get_results(self, keys: Collection[tuple[str, int]]) -> list[ResultVersion | None]:
        """Result versions by ``(task_id, version)``, in order; None where one is missing."""
        if not keys:
            return []
        data = await self._call(self.client.mget([result_key(t, v) for t, v in keys]))
        return [decode_optional(item, ResultVersion) for item in data]

    async def list_results(self, task_id: str, latest: int) -> list[ResultVersionInfo]:
        """What versions 1..``latest`` of a task are, without decoding their transcripts."""
        if latest < 1:
            return []
        data = await self._call(self.client.mget([result_key(task_id, n) for n in range(1, latest + 1)]))
        return [info for item in data if (info := decode_optional(item, ResultVersionInfo)) is not None]

    async def task_page(
        self, tenant: str, *, statuses: Collection[str], limit: int, cursor: str | None
    ) -> tuple[list[TaskRecord], str | None]:
        """One page of the tenant's tasks, newest first; see :func:`maie.store.task_index.page`."""
        try:
            return await task_index.page(
                self.client,
                tenant,
                load=self.get_many,
                statuses=statuses,
                limit=limit,
                cursor=cursor,
                ttl_s=self.ttl_s,
            )
        except REDIS_DOWN as exc:
            raise unavailable(exc) from exc

    async def create_batch(
        self, batch: BatchRecord, records: Collection[TaskRecord], *, slots: Collection[str] = ()
    ) -> None:
        """Store a batch and all its tasks, counted as active, in one transaction that frees ``slots``."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(batch_key(batch.batch_id), encoder.encode(batch), ex=self.ttl_s, nx=True)
            if slots:
                pipe.zrem(ADMISSION_KEY, *slots)
            for record in records:
                pipe.set(task_key(record.task_id), encoder.encode(record), ex=self.ttl_s, nx=True)
                pipe.zadd(ACTIVE_KEY, {record.task_id: record.submitted_at.timestamp()})
                task_index.add(pipe, record, ttl_s=self.ttl_s)
            await self._call(pipe.execute())

    async def discard_batch(self, batch: BatchRecord) -> None:
        """Remove a batch that could not be queued, and its tasks."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(batch_key(batch.batch_id), *(task_key(t) for t in batch.task_ids))
            if batch.task_ids:
                pipe.zrem(ACTIVE_KEY, *batch.task_ids)
            await self._call(pipe.execute())

    async def get_batch(self, batch_id: str) -> BatchRecord:
        """Return the batch record.

        Raises:
            NotFoundError: if there is no such batch (or it expired).
        """
        return decode(await self._call(self.client.get(batch_key(batch_id))), BatchRecord, "batch")

    async def claim(self, key: str, value: bytes, ttl_s: int) -> bytes | None:
        """Set ``key`` to ``value`` if it is free; return None if claimed, else what holds it."""
        while True:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(key, value, ex=ttl_s, nx=True)
                pipe.get(key)
                created, current = await self._call(pipe.execute())
            if created:
                return None
            if isinstance(current, bytes):
                return current
            # The holder expired between SET and GET: try again.

    async def replace_claim(self, key: str, value: bytes, ttl_s: int) -> None:
        """Overwrite a claimed ``key`` (it was ours) with its final ``value``."""
        await self._call(self.client.set(key, value, ex=ttl_s))

    async def release_claim(self, key: str, value: bytes) -> None:
        """Delete ``key`` if it still holds ``value`` (so another request's claim is never removed)."""
        await self._call(self._release_script(keys=[key], args=[value]))

    async def queue_depth(self) -> int:
        """Unfinished tasks; entries older than the record TTL are dropped first."""
        now = time.time()
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(ACTIVE_KEY, 0, now - self.ttl_s)
            pipe.zcard(ACTIVE_KEY)
            _, depth = await self._call(pipe.execute())
        return int(depth)

    async def workers_active(self, window_s: float = WORKER_HEARTBEAT_WINDOW_S) -> bool:
        """Whether any worker sent a heartbeat within ``window_s`` seconds."""
        count = await self._call(self.client.zcount(WORKERS_KEY, time.time() - window_s, "+inf"))
        return int(count) > 0

    async def loaded_models(self, window_s: float = WORKER_HEARTBEAT_WINDOW_S) -> dict[str, int]:
        """How many live workers (a heartbeat within ``window_s``) hold each model in memory."""
        workers = await self._call(self.client.zrangebyscore(WORKERS_KEY, time.time() - window_s, "+inf"))
        if not workers:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for worker in workers:
                pipe.smembers(
                    worker_models_key(worker.decode() if isinstance(worker, bytes) else str(worker))
                )
            held = await self._call(pipe.execute())
        counts: dict[str, int] = {}
        for labels in held:
            for label in labels:
                name = label.decode() if isinstance(label, bytes) else str(label)
                counts[name] = counts.get(name, 0) + 1
        return counts

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
