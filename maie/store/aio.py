"""The API's store: task records, batches, claims and queue slots in PostgreSQL; worker liveness in Redis.

Everything that must last is the system of record's (:mod:`maie.store.sql`), run over an async
psycopg pool. What the workers report about themselves (heartbeats, loaded models) is read from
Redis (``MAIE_REDIS_RESULTS_DB``), where rate limits and metrics series also live, through
:attr:`AsyncTaskStore.client`. Finished task records are cached there too
(:mod:`maie.store.record_cache`): :meth:`AsyncTaskStore.get` reads the cache first, and every
write of a record here puts what it committed, or a tombstone for what it deleted.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, TypeVar

import redis.asyncio as aioredis

from maie.config import DatabaseSettings
from maie.errors import ConflictError, NotFoundError
from maie.store.keys import REDIS_DOWN, WORKERS_KEY, async_reconnect, unavailable, worker_models_key
from maie.store.record_cache import AsyncRecordCache
from maie.store.sql import admission, batches, claims, deletion, listing, records, results, search
from maie.store.sql.database import AsyncDatabase
from maie.store.sql.listing import TaskFilter

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection

    from maie.schemas import (
        BatchRecord,
        ResultVersion,
        ResultVersionInfo,
        SearchHit,
        StageRecord,
        TaskRecord,
    )
    from maie.store.sql.records import Updated

__all__ = ["WORKER_HEARTBEAT_WINDOW_S", "AsyncTaskStore"]

T = TypeVar("T")

#: A worker counts as active (``/health``, ``maie_workers_active``) if its heartbeat is newer than this.
WORKER_HEARTBEAT_WINDOW_S = 60.0
_ALL = TaskFilter()


class AsyncTaskStore:
    """Non-blocking store used by the API.

    Args:
        database: The PostgreSQL pool.
        client: Redis, database ``MAIE_REDIS_RESULTS_DB``.
        ttl_s: Seconds an unfinished task counts toward the queue depth (an older one is stuck,
            not waiting) and a finished ``Idempotency-Key`` claim is kept (``MAIE_RESULT_TTL_S``).
            Records themselves are kept until deleted or purged.
    """

    def __init__(self, database: AsyncDatabase, client: aioredis.Redis, *, ttl_s: int) -> None:
        self.database = database
        self.client = client
        self.ttl_s = ttl_s
        self.cache = AsyncRecordCache(client)

    @classmethod
    def from_urls(
        cls, database_url: str, redis_url: str, *, ttl_s: int, settings: DatabaseSettings | None = None
    ) -> AsyncTaskStore:
        """A store on PostgreSQL ``database_url`` and the Redis database ``redis_url`` (no I/O yet)."""
        client = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_timeout=5, **async_reconnect()
        )
        return cls(AsyncDatabase(database_url, settings or DatabaseSettings()), client, ttl_s=ttl_s)

    async def _redis(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except REDIS_DOWN as exc:
            raise unavailable(exc) from exc

    async def ping(self) -> bool:
        """Whether both PostgreSQL and Redis answer (a submission needs both)."""
        return not await self.unreachable()

    async def unreachable(self) -> list[str]:
        """The servers that do not answer now: ``PostgreSQL``, ``Redis``, both or neither."""
        database, live = await asyncio.gather(self.ping_database(), self.ping_redis())
        return [name for name, up in (("PostgreSQL", database), ("Redis", live)) if not up]

    async def ping_database(self) -> bool:
        """Whether PostgreSQL answers."""
        return await self.database.ping()

    async def ping_redis(self) -> bool:
        """Whether Redis answers."""
        try:
            return bool(await self.client.ping())
        except REDIS_DOWN:
            return False

    # -- tasks -------------------------------------------------------------------------------------

    async def create(self, record: TaskRecord, *, slots: Collection[str] = ()) -> None:
        """Store a new task (it counts toward the queue depth), in one transaction that frees ``slots``."""
        await self.database.run(records.create(record, slots=slots))

    async def update(self, task_id: str, change: Callable[[TaskRecord], T]) -> Updated[T]:
        """Apply ``change`` to the stored record under its row lock.

        ``change`` may run more than once; an exception it raises leaves the record as it was.
        What its last run returns comes back with the record.

        Raises:
            NotFoundError: if there is no such task.
            ConflictError: if the change would move the status backwards.
        """
        updated, saved = await self.database.run(records.update(task_id, change))
        await self.cache.put(saved)
        return updated

    async def add_result(self, task_id: str, build: Callable[[int], ResultVersion]) -> ResultVersion:
        """Store ``build(n)`` as the task's next result version n and make it the latest, atomically.

        The contract of :meth:`maie.store.TaskStore.add_result` (without jobs), for versions the API
        adds itself (a rename of speakers): earlier versions are never touched, two writers racing
        get consecutive numbers. An exception ``build`` raises stores nothing and is raised here.

        Raises:
            NotFoundError: if the task does not exist.
        """
        result, saved = await self.database.run(results.add_result(task_id, build))
        await self.cache.put(saved)
        return result

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
        await self.database.run(records.discard(task_id))
        await self.cache.forget([task_id])

    async def get(self, task_id: str) -> TaskRecord:
        """Return the task record: a finished one from the cache when it is there, else PostgreSQL's.

        A finished record read from PostgreSQL is put in the cache for the next read. While
        PostgreSQL is away, a finished task that is cached is still answered.

        Raises:
            NotFoundError: if there is no such task (or it was deleted).
            StoreUnavailableError: if PostgreSQL cannot be reached (and the cache has no answer).
        """
        cached = await self.cache.get(task_id)
        if cached is not None:
            return cached
        read_at = time.monotonic()
        revised = await self.database.run(records.get(task_id))
        await self.cache.fill(revised, read_at)
        return revised.record

    async def get_many(self, task_ids: Collection[str]) -> list[TaskRecord | None]:
        """The records of ``task_ids`` in order; None where a task is gone."""
        return await self.database.run(records.get_many(task_ids))

    async def task_page(
        self,
        tenant: str,
        *,
        statuses: Collection[str] = (),
        limit: int,
        cursor: str | None,
        filters: TaskFilter = _ALL,
    ) -> tuple[list[TaskRecord], str | None]:
        """One page of the tenant's tasks, newest first, and the next page's cursor (None at the end).

        Args:
            tenant: Whose tasks.
            statuses: Keep only tasks in these statuses; empty keeps all. When given, they
                replace ``filters.statuses``.
            limit: Most tasks returned.
            cursor: ``next_cursor`` of the previous page, or None for the first page.
            filters: Date range, template, batch (and statuses).

        Raises:
            InvalidRequestError: for a cursor this server did not hand out.
        """
        if statuses:
            filters = listing.with_statuses(filters, statuses)
        return await self.database.run(listing.list_tasks(tenant, filters, limit=limit, cursor=cursor))

    async def search(
        self,
        tenant: str,
        query: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        filters: TaskFilter = _ALL,
    ) -> tuple[list[SearchHit], str | None]:
        """One page of the tenant's tasks whose transcripts or summary match ``query``, newest first.

        Raises:
            InvalidRequestError: for an empty or overlong query, or a foreign cursor.
        """
        return await self.database.run(search.search(tenant, query, filters, limit=limit, cursor=cursor))

    async def delete_task(self, task_id: str, *, tenant: str) -> TaskRecord:
        """Delete a task of ``tenant``: record, stages, artifacts, every version, search texts.

        Returns:
            The deleted record: its audio folder is the caller's to remove.

        Raises:
            NotFoundError: if there is no such task of ``tenant`` (another tenant's is untouched).
        """
        deleted = await self.database.run(deletion.delete_task(task_id, tenant=tenant))
        await self.cache.forget([task_id])
        return deleted

    # -- results -----------------------------------------------------------------------------------

    async def get_result(self, task_id: str, version: int) -> ResultVersion | None:
        """Return result version ``version``, or None."""
        return await self.database.run(results.get_result(task_id, version))

    async def get_results(self, keys: Collection[tuple[str, int]]) -> list[ResultVersion | None]:
        """Result versions by ``(task_id, version)``, in order; None where one is missing."""
        return await self.database.run(results.get_results(keys))

    async def list_results(self, task_id: str, latest: int) -> list[ResultVersionInfo]:
        """What versions 1..``latest`` of a task are, without decoding their transcripts."""
        return await self.database.run(results.list_results(task_id, latest))

    # -- batches -----------------------------------------------------------------------------------

    async def create_batch(
        self, batch: BatchRecord, records: Collection[TaskRecord], *, slots: Collection[str] = ()
    ) -> None:
        """Store a batch and all its tasks, counted as active, in one transaction that frees ``slots``."""
        await self.database.run(batches.create_batch(batch, records, slots=slots))

    async def discard_batch(self, batch: BatchRecord) -> None:
        """Remove a batch that could not be queued, and its tasks."""
        await self.database.run(batches.discard_batch(batch))
        await self.cache.forget(batch.task_ids)

    async def get_batch(self, batch_id: str) -> BatchRecord:
        """Return the batch record.

        Raises:
            NotFoundError: if there is no such batch.
        """
        return await self.database.run(batches.get_batch(batch_id))

    async def delete_batch(self, batch_id: str, *, tenant: str) -> tuple[BatchRecord, list[TaskRecord]]:
        """Delete a batch of ``tenant`` and all its tasks; returns them (their audio is the caller's).

        Raises:
            NotFoundError: if there is no such batch of ``tenant``.
        """
        batch, deleted = await self.database.run(batches.delete_batch(batch_id, tenant=tenant))
        await self.cache.forget(record.task_id for record in deleted)
        return batch, deleted

    # -- idempotency claims ------------------------------------------------------------------------

    async def claim(self, key: str, value: bytes, ttl_s: int) -> bytes | None:
        """Set ``key`` to ``value`` if it is free; return None if claimed, else what holds it."""
        return await self.database.run(claims.claim(key, value, ttl_s))

    async def replace_claim(self, key: str, value: bytes, ttl_s: int) -> None:
        """Overwrite a claimed ``key`` (it was ours) with its final ``value``."""
        await self.database.run(claims.replace_claim(key, value, ttl_s))

    async def release_claim(self, key: str, value: bytes) -> None:
        """Delete ``key`` if it still holds ``value`` (so another request's claim is never removed)."""
        await self.database.run(claims.release_claim(key, value))

    # -- admission ---------------------------------------------------------------------------------

    async def hold_slots(self, slots: Collection[str], *, limit: int, hold_s: float) -> int | None:
        """Hold queue ``slots`` for submissions being received, if there is room under ``limit``.

        Unfinished tasks and the slots other submissions hold count against the limit, checked and
        taken in one transaction (:mod:`maie.store.sql.admission`), so concurrent submissions
        cannot overshoot it. A slot is freed when its task is stored (:meth:`create`), by
        :meth:`free_slots`, or ``hold_s`` seconds later.

        Returns:
            None when the slots are held; else how many are in use (unfinished tasks plus held).
        """
        return await self.database.run(
            admission.hold_slots(slots, limit=limit, hold_s=hold_s, window_s=self.ttl_s)
        )

    async def free_slots(self, slots: Collection[str]) -> None:
        """Give back queue slots a submission no longer needs (freed ones are ignored)."""
        if slots:
            await self.database.run(admission.free_slots(slots))

    async def queue_depth(self) -> int:
        """Unfinished tasks submitted within the last ``ttl_s`` seconds."""
        return await self.database.run(admission.queue_depth(self.ttl_s))

    # -- workers (Redis) ---------------------------------------------------------------------------

    async def workers_active(self, window_s: float = WORKER_HEARTBEAT_WINDOW_S) -> bool:
        """Whether any worker sent a heartbeat within ``window_s`` seconds."""
        count = await self._redis(self.client.zcount(WORKERS_KEY, time.time() - window_s, "+inf"))
        return int(count) > 0

    async def loaded_models(self, window_s: float = WORKER_HEARTBEAT_WINDOW_S) -> dict[str, int]:
        """How many live workers (a heartbeat within ``window_s``) hold each model in memory."""
        workers = await self._redis(self.client.zrangebyscore(WORKERS_KEY, time.time() - window_s, "+inf"))
        if not workers:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for worker in workers:
                pipe.smembers(
                    worker_models_key(worker.decode() if isinstance(worker, bytes) else str(worker))
                )
            held = await self._redis(pipe.execute())
        counts: dict[str, int] = {}
        for labels in held:
            for label in labels:
                name = label.decode() if isinstance(label, bytes) else str(label)
                counts[name] = counts.get(name, 0) + 1
        return counts

    async def close(self) -> None:
        """Close both pools."""
        await self.database.close()
        await self.cache.aclose()
        await self.client.aclose()
