"""The API's store on PostgreSQL: the methods of the Redis ``AsyncTaskStore``, and deletion and search.

Heartbeats (``workers_active``) stay in Redis (they are not records); this store has none.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from maie.config import DatabaseSettings
from maie.errors import ConflictError, NotFoundError
from maie.store.sql import batches, claims, deletion, listing, records, results, search
from maie.store.sql.database import AsyncDatabase
from maie.store.sql.listing import TaskFilter

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from maie.schemas import (
        BatchRecord,
        ResultVersion,
        ResultVersionInfo,
        SearchHit,
        StageRecord,
        TaskRecord,
    )

__all__ = ["AsyncSqlTaskStore"]

_ALL = TaskFilter()


class AsyncSqlTaskStore:
    """Non-blocking store used by the API.

    Args:
        database: The connection pool.
        ttl_s: Seconds an unfinished task counts toward the queue depth (an older one is stuck,
            not waiting) and a finished ``Idempotency-Key`` claim is kept (``MAIE_RESULT_TTL_S``).
            Records themselves are kept until deleted or purged.
    """

    def __init__(self, database: AsyncDatabase, *, ttl_s: int) -> None:
        self.database = database
        self.ttl_s = ttl_s

    @classmethod
    def from_url(cls, url: str, *, ttl_s: int, settings: DatabaseSettings | None = None) -> AsyncSqlTaskStore:
        """A store on ``url`` (no I/O until first use)."""
        return cls(AsyncDatabase(url, settings or DatabaseSettings()), ttl_s=ttl_s)

    async def ping(self) -> bool:
        """Whether PostgreSQL answers."""
        return await self.database.ping()

    async def create(self, record: TaskRecord) -> None:
        """Store a new task; it counts as active until it finishes."""
        await self.database.run(records.create(record))

    async def update(self, task_id: str, change: Callable[[TaskRecord], None]) -> TaskRecord:
        """Apply ``change`` to the stored record under its row lock and return it.

        ``change`` may run more than once; an exception it raises leaves the record as it was.
        """
        return await self.database.run(records.update(task_id, change))

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

        return await self.update(task_id, append)

    async def remove_job(self, task_id: str, job_id: str) -> None:
        """Take back a job whose message could not be queued, so no stage waits for ever."""

        def drop(record: TaskRecord) -> None:
            record.stages = [s for s in record.stages if s.job_id != job_id]

        await self.update(task_id, drop)

    async def discard(self, task_id: str) -> None:
        """Remove a task that could not be queued, so nothing half-made stays behind."""
        await self.database.run(records.discard(task_id))

    async def get(self, task_id: str) -> TaskRecord:
        """Return the task record.

        Raises:
            NotFoundError: if there is no such task.
            StoreUnavailableError: if PostgreSQL cannot be reached.
        """
        return await self.database.run(records.get(task_id))

    async def get_result(self, task_id: str, version: int) -> ResultVersion | None:
        """Return result version ``version``, or None."""
        return await self.database.run(results.get_result(task_id, version))

    async def get_many(self, task_ids: Collection[str]) -> list[TaskRecord | None]:
        """The records of ``task_ids`` in order; None where a task is gone."""
        return await self.database.run(records.get_many(task_ids))

    async def get_results(self, keys: Collection[tuple[str, int]]) -> list[ResultVersion | None]:
        """Result versions by ``(task_id, version)``, in order; None where one is missing."""
        return await self.database.run(results.get_results(keys))

    async def list_results(self, task_id: str, latest: int) -> list[ResultVersionInfo]:
        """What versions 1..``latest`` of a task are, without decoding their transcripts."""
        return await self.database.run(results.list_results(task_id, latest))

    async def task_page(
        self,
        tenant: str,
        *,
        statuses: Collection[str] = (),
        limit: int,
        cursor: str | None,
        filters: TaskFilter = _ALL,
    ) -> tuple[list[TaskRecord], str | None]:
        """One page of the tenant's tasks, newest first, and the next page's cursor.

        Args:
            tenant: Whose tasks.
            statuses: Keep only tasks in these statuses (as the Redis store's); empty keeps all.
                When given, they replace ``filters.statuses``.
            limit: Most tasks returned.
            cursor: ``next_cursor`` of the previous page, or None for the first page.
            filters: Date range, template, batch (and statuses).

        Raises:
            InvalidRequestError: for a cursor this server did not hand out.
        """
        if statuses:
            filters = TaskFilter(
                statuses=frozenset(statuses),
                submitted_after=filters.submitted_after,
                submitted_before=filters.submitted_before,
                template_id=filters.template_id,
                batch_id=filters.batch_id,
            )
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

    async def create_batch(self, batch: BatchRecord, records: Collection[TaskRecord]) -> None:
        """Store a batch and all its tasks, counted as active, in one transaction."""
        await self.database.run(batches.create_batch(batch, records))

    async def discard_batch(self, batch: BatchRecord) -> None:
        """Remove a batch that could not be queued, and its tasks."""
        await self.database.run(batches.discard_batch(batch))

    async def get_batch(self, batch_id: str) -> BatchRecord:
        """Return the batch record.

        Raises:
            NotFoundError: if there is no such batch.
        """
        return await self.database.run(batches.get_batch(batch_id))

    async def delete_task(self, task_id: str, *, tenant: str) -> TaskRecord:
        """Delete a task of ``tenant``: record, stages, artifacts, versions, search texts.

        Returns:
            The deleted record: its ``audio_path`` folder is the caller's to remove.

        Raises:
            NotFoundError: if there is no such task of ``tenant`` (another tenant's is untouched).
        """
        return await self.database.run(deletion.delete_task(task_id, tenant=tenant))

    async def delete_batch(self, batch_id: str, *, tenant: str) -> tuple[BatchRecord, list[TaskRecord]]:
        """Delete a batch of ``tenant`` and all its tasks; returns them (their audio is the caller's).

        Raises:
            NotFoundError: if there is no such batch of ``tenant``.
        """
        return await self.database.run(batches.delete_batch(batch_id, tenant=tenant))

    async def purge(self, older_than: timedelta, *, limit: int = 500) -> list[TaskRecord]:
        """Delete up to ``limit`` tasks submitted longer than ``older_than`` ago; returns them."""
        return await self.database.run(deletion.purge(datetime.now(UTC) - older_than, limit=limit))

    async def claim(self, key: str, value: bytes, ttl_s: int) -> bytes | None:
        """Set ``key`` to ``value`` if it is free; return None if claimed, else what holds it."""
        return await self.database.run(claims.claim(key, value, ttl_s))

    async def replace_claim(self, key: str, value: bytes, ttl_s: int) -> None:
        """Overwrite a claimed ``key`` (it was ours) with its final ``value``."""
        await self.database.run(claims.replace_claim(key, value, ttl_s))

    async def release_claim(self, key: str, value: bytes) -> None:
        """Delete ``key`` if it still holds ``value`` (so another request's claim is never removed)."""
        await self.database.run(claims.release_claim(key, value))

    async def queue_depth(self) -> int:
        """Unfinished tasks submitted within the last ``ttl_s`` seconds."""
        return await self.database.run(records.queue_depth(self.ttl_s))

    async def close(self) -> None:
        """Close the connection pool."""
        await self.database.close()
