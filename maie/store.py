"""Task store on Redis: task records, stage artifacts and result versions.

Everything lives in the results database (``MAIE_REDIS_RESULTS_DB``) under the ``maie:`` prefix and
is encoded as JSON with the contract Structs of :mod:`maie.schemas`:

- ``maie:task:<id>`` — the :class:`~maie.schemas.TaskRecord`;
- ``maie:task:<id>:artifact:<stage>`` — a stage's output (preprocess metadata, ASR segments, ...);
- ``maie:task:<id>:result:<n>`` — immutable :class:`~maie.schemas.ResultVersion` number ``n``;
- ``maie:active`` — sorted set of unfinished task ids by submit time (the queue depth);
- ``maie:workers`` — sorted set of worker ids by last heartbeat;
- ``maie:tenant:<tenant>:tasks`` — the tenant's tasks, newest last, for cursor paging
  (:mod:`maie.task_index`);
- ``maie:batch:<id>`` — a :class:`~maie.schemas.BatchRecord`;
- ``maie:idempotency:<tenant>:<sha256 of key>`` — the task or batch an ``Idempotency-Key`` created.

Every key is written with the record TTL. The worker uses :class:`TaskStore` (blocking client,
optimistic transactions for read-modify-write); the API uses :class:`AsyncTaskStore`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import redis
import redis.asyncio as aioredis
import redis.exceptions

from maie import task_index
from maie.errors import NotFoundError, StoreUnavailableError
from maie.schemas import BatchRecord, ResultVersion, ResultVersionInfo, TaskRecord

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection

__all__ = ["AsyncTaskStore", "TaskStore", "results_url"]

T = TypeVar("T")
StructT = TypeVar("StructT", bound=msgspec.Struct)

PREFIX = "maie"
ACTIVE_KEY = f"{PREFIX}:active"
WORKERS_KEY = f"{PREFIX}:workers"
#: Errors that mean "Redis cannot be reached right now".
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

_encoder = msgspec.json.Encoder()
#: Compare-and-delete: remove KEYS[1] only while it holds ARGV[1].
_RELEASE_LUA = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def task_key(task_id: str) -> str:
    """Key of a task record."""
    return f"{PREFIX}:task:{task_id}"


def artifact_key(task_id: str, stage: str) -> str:
    """Key of one stage's artifact."""
    return f"{PREFIX}:task:{task_id}:artifact:{stage}"


def result_key(task_id: str, version: int) -> str:
    """Key of one result version."""
    return f"{PREFIX}:task:{task_id}:result:{version}"


def batch_key(batch_id: str) -> str:
    """Key of a batch record."""
    return f"{PREFIX}:batch:{batch_id}"


def results_url(url: str, db: int) -> str:
    """The Redis URL of the results database: ``url`` with its database number replaced.

    redis-py lets the URL's database win over a ``db=`` argument, so the URL itself is rewritten.
    """
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        # urlunsplit drops the "//" of an empty host, which redis-py needs for unix URLs.
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def _decode(data: object, kind: type[StructT], what: str) -> StructT:
    if data is None:
        raise NotFoundError(f"{what} not found")
    return msgspec.json.decode(_raw(data), type=kind)


def _decode_optional(data: object, kind: type[StructT]) -> StructT | None:
    return None if data is None else msgspec.json.decode(_raw(data), type=kind)


def _raw(data: object) -> bytes | str:
    if not isinstance(data, bytes | str):
        msg = f"unexpected reply from Redis: {type(data).__name__}"
        raise TypeError(msg)
    return data


def _unavailable(exc: Exception) -> StoreUnavailableError:
    return StoreUnavailableError(f"the task store (Redis) cannot be reached: {exc}")


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
            raise _unavailable(exc) from exc

    def get(self, task_id: str) -> TaskRecord:
        """Return the task record.

        Raises:
            NotFoundError: if there is no such task (or it expired).
            StoreUnavailableError: if Redis cannot be reached.
        """
        return _decode(self._call(lambda: self.client.get(task_key(task_id))), TaskRecord, "task")

    def update(self, task_id: str, change: Callable[[TaskRecord], None]) -> TaskRecord:
        """Apply ``change`` to the stored record atomically (optimistic WATCH/MULTI) and return it.

        ``change`` may run more than once if another writer got there first, so it must only
        mutate the record it is given.
        """
        key = task_key(task_id)
        updated: list[TaskRecord] = []

        def attempt(pipe: redis.client.Pipeline) -> None:
            record = _decode(pipe.get(key), TaskRecord, "task")
            change(record)
            pipe.multi()
            pipe.set(key, _encoder.encode(record), ex=self.ttl_s)
            if record.status.terminal:
                pipe.zrem(ACTIVE_KEY, task_id)
            updated[:] = [record]

        self._call(lambda: self.client.transaction(attempt, key))
        return updated[0]

    def put_artifact(self, task_id: str, stage: str, artifact: msgspec.Struct) -> None:
        """Store a stage's artifact."""
        self._call(
            lambda: self.client.set(artifact_key(task_id, stage), _encoder.encode(artifact), ex=self.ttl_s)
        )

    def get_artifact(self, task_id: str, stage: str, kind: type[StructT]) -> StructT | None:
        """Return a stage's artifact, or None if the stage has not stored one yet."""
        return _decode_optional(self._call(lambda: self.client.get(artifact_key(task_id, stage))), kind)

    def put_result(self, task_id: str, result: ResultVersion) -> bool:
        """Store an immutable result version; returns False if that version already exists."""
        key = result_key(task_id, result.version)
        stored = self._call(lambda: self.client.set(key, _encoder.encode(result), ex=self.ttl_s, nx=True))
        return bool(stored)

    def get_result(self, task_id: str, version: int) -> ResultVersion | None:
        """Return result version ``version``, or None."""
        return _decode_optional(
            self._call(lambda: self.client.get(result_key(task_id, version))), ResultVersion
        )

    def add_result(self, task_id: str, build: Callable[[int], ResultVersion]) -> ResultVersion:
        """Store ``build(n)`` as the task's next result version n and make it the latest, atomically.

        For results added after the pipeline's version 1 (a re-summarization stores version n + 1
        with kind ``"resummary"`` and its own ``versions`` block). Earlier versions are never
        touched; two writers racing get consecutive numbers.

        Raises:
            NotFoundError: if the task does not exist.
        """
        key = task_key(task_id)
        stored: list[ResultVersion] = []

        def attempt(pipe: redis.client.Pipeline) -> None:
            record = _decode(pipe.get(key), TaskRecord, "task")
            version = (record.result_version or 0) + 1
            while pipe.exists(result_key(task_id, version)):
                version += 1
            result = build(version)
            record.result_version = version
            pipe.multi()
            pipe.set(result_key(task_id, version), _encoder.encode(result), ex=self.ttl_s, nx=True)
            pipe.set(key, _encoder.encode(record), ex=self.ttl_s)
            stored[:] = [result]

        self._call(lambda: self.client.transaction(attempt, key))
        return stored[0]

    def heartbeat(self, worker_id: str) -> None:
        """Record that worker ``worker_id`` is alive now."""
        now = time.time()
        with self.client.pipeline() as pipe:
            pipe.zadd(WORKERS_KEY, {worker_id: now})
            pipe.zremrangebyscore(WORKERS_KEY, 0, now - 3600)
            self._call(pipe.execute)

    def retire(self, worker_id: str) -> None:
        """Forget a worker that stops cleanly."""
        self._call(lambda: self.client.zrem(WORKERS_KEY, worker_id))

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


class AsyncTaskStore:
    """Non-blocking store used by the API."""

    def __init__(self, client: aioredis.Redis, *, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self._release_script = client.register_script(_RELEASE_LUA)

    @classmethod
    def from_url(cls, url: str, *, ttl_s: int) -> AsyncTaskStore:
        """Open a pooled client on the results database URL (no I/O until first use)."""
        client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        return cls(client, ttl_s=ttl_s)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except REDIS_DOWN as exc:
            raise _unavailable(exc) from exc

    async def ping(self) -> bool:
        """Whether Redis answers."""
        try:
            return bool(await self.client.ping())
        except REDIS_DOWN:
            return False

    async def create(self, record: TaskRecord) -> None:
        """Store a new task and count it as active, in one transaction."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(task_key(record.task_id), _encoder.encode(record), ex=self.ttl_s, nx=True)
            pipe.zadd(ACTIVE_KEY, {record.task_id: record.submitted_at.timestamp()})
            task_index.add(pipe, record, ttl_s=self.ttl_s)
            await self._call(pipe.execute())

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
        return _decode(await self._call(self.client.get(task_key(task_id))), TaskRecord, "task")

    async def get_result(self, task_id: str, version: int) -> ResultVersion | None:
        """Return result version ``version``, or None."""
        data = await self._call(self.client.get(result_key(task_id, version)))
        return _decode_optional(data, ResultVersion)

    async def get_many(self, task_ids: Collection[str]) -> list[TaskRecord | None]:
        """The records of ``task_ids`` in order; None where a task is gone."""
        if not task_ids:
            return []
        data = await self._call(self.client.mget([task_key(t) for t in task_ids]))
        return [_decode_optional(item, TaskRecord) for item in data]

    async def get_results(self, keys: Collection[tuple[str, int]]) -> list[ResultVersion | None]:
        """Result versions by ``(task_id, version)``, in order; None where one is missing."""
        if not keys:
            return []
        data = await self._call(self.client.mget([result_key(t, v) for t, v in keys]))
        return [_decode_optional(item, ResultVersion) for item in data]

    async def list_results(self, task_id: str, latest: int) -> list[ResultVersionInfo]:
        """What versions 1..``latest`` of a task are, without decoding their transcripts."""
        if latest < 1:
            return []
        data = await self._call(self.client.mget([result_key(task_id, n) for n in range(1, latest + 1)]))
        return [info for item in data if (info := _decode_optional(item, ResultVersionInfo)) is not None]

    async def task_page(
        self, tenant: str, *, statuses: Collection[str], limit: int, cursor: str | None
    ) -> tuple[list[TaskRecord], str | None]:
        """One page of the tenant's tasks, newest first; see :func:`maie.task_index.page`."""
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
            raise _unavailable(exc) from exc

    async def create_batch(self, batch: BatchRecord, records: Collection[TaskRecord]) -> None:
        """Store a batch and all its tasks, counted as active, in one transaction."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(batch_key(batch.batch_id), _encoder.encode(batch), ex=self.ttl_s, nx=True)
            for record in records:
                pipe.set(task_key(record.task_id), _encoder.encode(record), ex=self.ttl_s, nx=True)
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
        return _decode(await self._call(self.client.get(batch_key(batch_id))), BatchRecord, "batch")

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

    async def workers_active(self, window_s: float = 60.0) -> bool:
        """Whether any worker sent a heartbeat within ``window_s`` seconds."""
        count = await self._call(self.client.zcount(WORKERS_KEY, time.time() - window_s, "+inf"))
        return int(count) > 0

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
