"""The worker's store: task records in PostgreSQL, the worker's own live state in Redis.

Records, artifacts and result versions are the system of record's (:mod:`maie.store.sql`), run
over a blocking psycopg pool; heartbeats and the models a worker holds are live state that is
rewritten every few seconds, so they stay in Redis (``MAIE_REDIS_RESULTS_DB``), beside the leases
and metrics series that other worker modules keep there through :attr:`TaskStore.client`, and the
API's cache of finished records (:mod:`maie.store.record_cache`): every write of a record here
puts what it committed there, or a tombstone for what it deleted.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import msgspec
import redis

from maie.config import DatabaseSettings
from maie.store.keys import REDIS_DOWN, WORKERS_KEY, unavailable, worker_models_key
from maie.store.record_cache import RecordCache
from maie.store.sql import deletion, records, results
from maie.store.sql.database import Database

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from maie.schemas import ResultVersion, TaskRecord
    from maie.store.sql.records import Updated

__all__ = ["WORKER_MODELS_TTL_S", "TaskStore"]

#: Seconds a worker's list of loaded models outlives its last heartbeat (readers also check that).
WORKER_MODELS_TTL_S = 120

T = TypeVar("T")
StructT = TypeVar("StructT", bound=msgspec.Struct)


class TaskStore:
    """Blocking store used by the worker (thread-safe: one pool per process).

    Args:
        database: The PostgreSQL pool (records).
        client: Redis, database ``MAIE_REDIS_RESULTS_DB`` (heartbeats; leases and metrics use it too).
    """

    def __init__(self, database: Database, client: redis.Redis) -> None:
        self.database = database
        self.client = client
        self.cache = RecordCache(client)

    @classmethod
    def from_urls(
        cls, database_url: str, redis_url: str, *, settings: DatabaseSettings | None = None
    ) -> TaskStore:
        """A store on PostgreSQL ``database_url`` and the Redis database ``redis_url`` (no I/O yet)."""
        client = redis.Redis.from_url(redis_url, health_check_interval=30)
        return cls(Database(database_url, settings or DatabaseSettings()), client)

    def ping(self) -> bool:
        """Whether PostgreSQL answers."""
        return self.database.ping()

    def get(self, task_id: str) -> TaskRecord:
        """Return the task record.

        Raises:
            NotFoundError: if there is no such task (or it was deleted).
            StoreUnavailableError: if PostgreSQL cannot be reached.
        """
        return self.database.run(records.get(task_id)).record

    def update(self, task_id: str, change: Callable[[TaskRecord], T]) -> Updated[T]:
        """Apply ``change`` to the stored record under its row lock.

        ``change`` may run more than once (a transaction retried after a deadlock), so it must only
        mutate the record it is given; an exception it raises leaves the record as it was. What its
        last run returns comes back with the record (whether the task was still running, say).

        Raises:
            NotFoundError: if there is no such task.
            ConflictError: if the change would move the status backwards.
            StoreUnavailableError: if PostgreSQL cannot be reached.
        """
        updated, saved = self.database.run(records.update(task_id, change))
        self.cache.put(saved)
        return updated

    def put_artifact(self, task_id: str, stage: str, artifact: msgspec.Struct) -> None:
        """Store (or replace) a stage's artifact.

        Raises:
            NotFoundError: if the task is gone (deleted while the stage ran).
        """
        self.database.run(results.put_artifact(task_id, stage, artifact))

    def get_artifact(self, task_id: str, stage: str, kind: type[StructT]) -> StructT | None:
        """Return a stage's artifact, or None if the stage has not stored one yet."""
        return self.database.run(results.get_artifact(task_id, stage, kind))

    def put_result(self, task_id: str, result: ResultVersion) -> bool:
        """Store an immutable result version; returns False if that version already exists.

        Raises:
            NotFoundError: if the task is gone.
        """
        return self.database.run(results.put_result(task_id, result))

    def get_result(self, task_id: str, version: int) -> ResultVersion | None:
        """Return result version ``version``, or None."""
        return self.database.run(results.get_result(task_id, version))

    def add_result(
        self, task_id: str, build: Callable[[int], ResultVersion], *, job_id: str | None = None
    ) -> ResultVersion:
        """Store ``build(n)`` as the task's next result version n and make it the latest, atomically.

        For results added after the pipeline's version 1 (a re-summarization stores version n + 1
        with kind ``"resummary"`` and its own ``versions`` block). Earlier versions are never
        touched; two writers racing get consecutive numbers, without gaps. With ``job_id``, the
        job's stage is marked with its version in the same transaction, and a job that already
        has a version gets that one back instead of a second (its message was delivered twice).

        Raises:
            NotFoundError: if the task or the job does not exist.
        """
        result, saved = self.database.run(results.add_result(task_id, build, job_id=job_id))
        self.cache.put(saved)
        return result

    def purge(self, older_than: timedelta, *, limit: int = 500) -> list[TaskRecord] | None:
        """Delete up to ``limit`` tasks submitted longer than ``older_than`` ago, oldest first.

        Returns:
            The deleted records (their audio is the caller's to remove), or None when another
            process is purging right now (one runner at a time, across every worker).
        """
        purged = self.database.run(deletion.purge(datetime.now(UTC) - older_than, limit=limit))
        if purged:
            self.cache.forget(record.task_id for record in purged)
        return purged

    def heartbeat(self, worker_id: str, *, models: Sequence[str] | None = None) -> None:
        """Record that worker ``worker_id`` is alive now and, with ``models``, which models it holds.

        Cache writes that Redis missed (:mod:`maie.store.record_cache`) are made again here too.
        """
        self.cache.settle()
        now = time.time()
        with self.client.pipeline() as pipe:
            pipe.zadd(WORKERS_KEY, {worker_id: now})
            pipe.zremrangebyscore(WORKERS_KEY, 0, now - 3600)
            if models is not None:
                key = worker_models_key(worker_id)
                pipe.delete(key)
                if models:
                    pipe.sadd(key, *models)
                    pipe.expire(key, WORKER_MODELS_TTL_S)
            self._redis(pipe.execute)

    def retire(self, worker_id: str) -> None:
        """Forget a worker that stops cleanly."""
        with self.client.pipeline() as pipe:
            pipe.zrem(WORKERS_KEY, worker_id)
            pipe.delete(worker_models_key(worker_id))
            self._redis(pipe.execute)

    @staticmethod
    def _redis(fn: Callable[[], T]) -> T:
        try:
            return fn()
        except REDIS_DOWN as exc:
            raise unavailable(exc) from exc

    def close(self) -> None:
        """Close both pools."""
        self.database.close()
        self.client.close()
