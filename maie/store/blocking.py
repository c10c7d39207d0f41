"""The blocking task store used by the worker: optimistic transactions for read-modify-write."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypeVar, cast

import msgspec
import redis
import redis.exceptions

from maie.errors import NotFoundError
from maie.schemas import ResultVersion, StageName, TaskRecord
from maie.store.keys import (
    ACTIVE_KEY,
    REDIS_DOWN,
    WORKERS_KEY,
    Updated,
    artifact_key,
    decode,
    decode_optional,
    encoder,
    result_key,
    task_key,
    unavailable,
    worker_models_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["WORKER_MODELS_TTL_S", "TaskStore"]

#: Seconds a worker's list of loaded models outlives its last heartbeat (readers also check that).
WORKER_MODELS_TTL_S = 120

T = TypeVar("T")
StructT = TypeVar("StructT", bound=msgspec.Struct)


class TaskStore:
    """Blocking store used by the worker."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    @classmethod
    def from_url(cls, url: str, *, ttl_s: int) -> TaskStore:
        """Open a pooled client on the results database URL."""
        return cls(redis.Redis.from_url(url, health_check_interval=30), ttl_s=ttl_s)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except REDIS_DOWN as exc:
            raise unavailable(exc) from exc

    def _transaction(self, attempt: Callable[[redis.client.Pipeline], T], key: str) -> T:
        """Run ``attempt`` as an optimistic transaction watching ``key`` (again after a conflict).

        Returns:
            What the successful run of ``attempt`` returned.
        """
        value = self._call(
            # redis-py types the callable as returning None, though it hands back its value.
            lambda: self.client.transaction(attempt, key, value_from_callable=True)  # type: ignore[arg-type]
        )
        return cast("T", value)

    def get(self, task_id: str) -> TaskRecord:
        """Return the task record.

        Raises:
            NotFoundError: if there is no such task (or it expired).
            StoreUnavailableError: if Redis cannot be reached.
        """
        return decode(self._call(lambda: self.client.get(task_key(task_id))), TaskRecord, "task")

    def update(self, task_id: str, change: Callable[[TaskRecord], T]) -> Updated[T]:
        """Apply ``change`` to the stored record atomically (optimistic WATCH/MULTI).

        ``change`` may run more than once if another writer got there first, so it must only
        mutate the record it is given; what its last run returns comes back with the record
        (whether the task was still running, say).

        Raises:
            NotFoundError: if there is no such task (or it expired).
            StoreUnavailableError: if Redis cannot be reached.
        """
        key = task_key(task_id)

        def attempt(pipe: redis.client.Pipeline) -> Updated[T]:
            record = decode(pipe.get(key), TaskRecord, "task")
            value = change(record)
            pipe.multi()
            pipe.set(key, encoder.encode(record), ex=self.ttl_s)
            if record.status.terminal:
                pipe.zrem(ACTIVE_KEY, task_id)
            return Updated(record, value)

        return self._transaction(attempt, key)

    def put_artifact(self, task_id: str, stage: str, artifact: msgspec.Struct) -> None:
        """Store a stage's artifact."""
        self._call(
            lambda: self.client.set(artifact_key(task_id, stage), encoder.encode(artifact), ex=self.ttl_s)
        )

    def get_artifact(self, task_id: str, stage: str, kind: type[StructT]) -> StructT | None:
        """Return a stage's artifact, or None if the stage has not stored one yet."""
        return decode_optional(self._call(lambda: self.client.get(artifact_key(task_id, stage))), kind)

    def put_result(self, task_id: str, result: ResultVersion) -> bool:
        """Store an immutable result version; returns False if that version already exists."""
        key = result_key(task_id, result.version)
        stored = self._call(lambda: self.client.set(key, encoder.encode(result), ex=self.ttl_s, nx=True))
        return bool(stored)

    def get_result(self, task_id: str, version: int) -> ResultVersion | None:
        """Return result version ``version``, or None."""
        return decode_optional(
            self._call(lambda: self.client.get(result_key(task_id, version))), ResultVersion
        )

    def add_result(
        self, task_id: str, build: Callable[[int], ResultVersion], *, job_id: str | None = None
    ) -> ResultVersion:
        """Store ``build(n)`` as the task's next result version n and make it the latest, atomically.

        For results added after the pipeline's version 1 (a re-summarization stores version n + 1
        with kind ``"resummary"`` and its own ``versions`` block). Earlier versions are never
        touched; two writers racing get consecutive numbers. With ``job_id``, the job's stage is
        marked done with its version in the same transaction, and a job that already has a version
        gets that one back instead of a second (its message was delivered twice). The task's other
        keys (artifacts, earlier versions) get a fresh TTL too, so they live as long as the newest.

        Raises:
            NotFoundError: if the task or the job does not exist.
        """
        key = task_key(task_id)

        def attempt(pipe: redis.client.Pipeline) -> ResultVersion | int:
            """The version stored now, or the number of the one the job already has."""
            record = decode(pipe.get(key), TaskRecord, "task")
            job = record.job(job_id) if job_id else None
            if job is not None and job.result_version is not None:
                return job.result_version
            version = (record.result_version or 0) + 1
            while pipe.exists(result_key(task_id, version)):
                version += 1
            result = build(version)
            record.result_version = version
            if job is not None:
                job.result_version = version
            pipe.multi()
            pipe.set(result_key(task_id, version), encoder.encode(result), ex=self.ttl_s, nx=True)
            pipe.set(key, encoder.encode(record), ex=self.ttl_s)
            for other in [*(artifact_key(task_id, s) for s in StageName), *range(1, version)]:
                pipe.expire(result_key(task_id, other) if isinstance(other, int) else other, self.ttl_s)
            return result

        try:
            done = self._transaction(attempt, key)
        except KeyError as exc:
            raise NotFoundError(f"task {task_id} has no job {job_id}") from exc
        if isinstance(done, int):
            existing = self.get_result(task_id, done)
            if existing is None:
                raise NotFoundError(f"result version {done} of task {task_id} is gone (expired)")
            return existing
        return done

    def heartbeat(self, worker_id: str, *, models: Sequence[str] | None = None) -> None:
        """Record that worker ``worker_id`` is alive now and, with ``models``, which models it holds."""
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
            self._call(pipe.execute)

    def retire(self, worker_id: str) -> None:
        """Forget a worker that stops cleanly."""
        with self.client.pipeline() as pipe:
            pipe.zrem(WORKERS_KEY, worker_id)
            pipe.delete(worker_models_key(worker_id))
            self._call(pipe.execute)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()
