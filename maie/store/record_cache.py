"""A cache of finished task records in Redis, so that polling a finished task costs one GET.

PostgreSQL is the system of record; this cache only spares it the reads of status polling, and
what a client sees is the same with or without it. It lives in the results database
(``MAIE_REDIS_RESULTS_DB``), one key per task (:func:`~maie.store.keys.record_cache_key`):

- Only finished records (COMPLETE, FAILED) are kept. They are what pollers and dashboards ask for
  over and over, and a task never leaves those statuses, so an unfinished record is never here.
- An entry is the record's revision (``tasks.revision``, 20 digits) followed by its JSON. Every
  write of a finished record puts it once its transaction has committed, through
  :data:`PUT_LUA`, which replaces only an older revision: two writers whose puts land out of
  order, or a reader filling a miss with what it read just before a write committed, can never
  leave an older copy over a newer one.
- Deleting a task writes a tombstone, which no put replaces, so a reader that read the record just
  before the deletion cannot bring it back; a tombstone reads as "not found".
- Entries expire after :data:`ENTRY_TTL_S`, tombstones after :data:`TOMBSTONE_TTL_S`; a reader
  fills only what it read within :data:`FILL_WINDOW_S`, far less than a tombstone lives.
- Redis unreachable: reads go to PostgreSQL (a read never fails because of the cache) and the
  cache is left alone for :data:`BACKOFF_S`. A write that could not be made is kept in the process
  (:class:`Backlog`) and made before the cache is read or written again, and by the worker's
  heartbeat; until then, readers of that process read PostgreSQL.

PostgreSQL down: a finished task that is in the cache is still answered from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Final, cast

import msgspec
import redis
import redis.exceptions
import structlog

from maie.errors import NotFoundError
from maie.schemas import TaskRecord
from maie.store.keys import record_cache_key

if TYPE_CHECKING:
    from collections.abc import Iterable

    import redis.asyncio as aioredis
    from redis.asyncio.connection import AbstractConnection

    from maie.store.sql.records import Revised

__all__ = [
    "BACKOFF_S",
    "ENTRY_TTL_S",
    "FILL_WINDOW_S",
    "PUT_LUA",
    "TOMBSTONE",
    "TOMBSTONE_TTL_S",
    "AsyncRecordCache",
    "Backlog",
    "RecordCache",
    "entry_of",
]

log = structlog.get_logger(__name__)

#: Seconds a cached record lives after its last put (a poller's record is put again on each change).
ENTRY_TTL_S: Final = 600
#: Seconds a deleted task's tombstone lives: far longer than any fill can be late (FILL_WINDOW_S).
TOMBSTONE_TTL_S: Final = 3600
#: A reader fills the cache only with a record it read this many seconds ago at most.
FILL_WINDOW_S: Final = 5.0
#: Seconds the cache is left alone after Redis failed (reads go to PostgreSQL meanwhile).
BACKOFF_S: Final = 1.0
#: Writes a process keeps while Redis is away; beyond that the oldest are dropped (they then
#: expire on their own within ENTRY_TTL_S).
BACKLOG_MAX: Final = 10_000
#: The value of a deleted task's key.
TOMBSTONE: Final = b"-"
_WIDTH = 20
#: Put ARGV[1] (revision + JSON) at KEYS[1] for ARGV[2] seconds unless the key holds a tombstone or
#: a revision as high; the revisions are fixed-width digits, so comparing the strings compares them.
PUT_LUA: Final = """
local old = redis.call('GETRANGE', KEYS[1], 0, 19)
if old == '-' or (old ~= '' and old >= string.sub(ARGV[1], 1, 20)) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
#: Anything Redis may answer instead of doing what was asked: down, timed out, out of memory.
_FAILED = (redis.exceptions.RedisError, OSError)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TaskRecord)


def entry_of(revised: Revised) -> bytes:
    """The cache entry of a record: its revision, zero-padded, then its JSON."""
    return b"%020d" % revised.revision + _encoder.encode(revised.record)


def _record_of(task_id: str, data: bytes) -> TaskRecord:
    if data == TOMBSTONE:
        raise NotFoundError(f"task {task_id} not found")
    return _decoder.decode(memoryview(data)[_WIDTH:])


def _newer(value: bytes, than: bytes | None) -> bool:
    """Whether entry (or tombstone) ``value`` should replace ``than``: a tombstone always does."""
    if than is None or value == TOMBSTONE:
        return True
    return than != TOMBSTONE and value[:_WIDTH] > than[:_WIDTH]


class Backlog:
    """Writes not yet made in Redis (newest revision per task), and whether Redis is failing.

    Thread-safe: the worker's threads share one. A write stays here until Redis has taken it, so
    a reader of this process never reads the cache while a write of its own is missing there.
    """

    def __init__(self) -> None:
        #: Task id to the entry or tombstone waiting to be written, oldest first.
        self.writes: OrderedDict[str, bytes] = OrderedDict()
        #: Whether Redis failed last time it was tried.
        self.down = False
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def add(self, writes: dict[str, bytes]) -> None:
        """Keep ``writes`` (task id to entry or tombstone), each unless a newer one is kept."""
        with self._lock:
            for task_id, value in writes.items():
                if _newer(value, self.writes.get(task_id)):
                    self.writes[task_id] = value
                    self.writes.move_to_end(task_id)
            while len(self.writes) > BACKLOG_MAX:
                dropped, _ = self.writes.popitem(last=False)
                log.warning("record_cache.backlog_dropped", task_id=dropped)

    def snapshot(self) -> dict[str, bytes]:
        """What is waiting, now."""
        with self._lock:
            return dict(self.writes)

    def done(self, written: dict[str, bytes]) -> None:
        """Forget the writes Redis took (unless a newer one came meanwhile)."""
        with self._lock:
            for task_id, value in written.items():
                if self.writes.get(task_id) is value:
                    del self.writes[task_id]
        self.answered()

    def usable(self) -> bool:
        """Whether Redis may be tried now (it answered last time, or BACKOFF_S have passed)."""
        return not self.down or time.monotonic() >= self._retry_at

    def failed(self, exc: Exception) -> None:
        """Redis did not answer: leave it alone for BACKOFF_S."""
        if not self.down:
            log.warning("record_cache.unavailable", reason=str(exc) or type(exc).__name__)
        self.down = True
        self._retry_at = time.monotonic() + BACKOFF_S

    def answered(self) -> None:
        """Redis answered again."""
        if self.down:
            self.down = False
            log.info("record_cache.available")


def _writes(revised: Revised | None) -> dict[str, bytes]:
    if revised is None or not revised.record.status.terminal:
        return {}
    return {revised.record.task_id: entry_of(revised)}


class QuickGets:
    """The cache's hot read: GETs asked at the same moment go to Redis together, as one MGET.

    Status polling reads the cache by the thousand, and redis-py's ``execute_command`` wraps each
    command in more than the command costs (pool checkout and release, the retry wrapper, the
    observability hooks), and each round trip costs a send, a read and an event-loop wake-up. Here
    the reads of one event-loop turn wait together and one task sends them as a single ``MGET`` on
    a connection of its own (made like the client's: same address, database, timeouts and health
    checks); reads asked while it waits go in the next ``MGET``. Every read is still answered by
    Redis after it was asked, so it sees every write committed before. A connection that fails is
    dropped; one that had served before is retried once on a fresh connection (Redis restarted
    meanwhile), as the client's retry would; a failure reaches every read of its ``MGET``.

    Args:
        client: The client whose connection settings to copy.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._pool = client.connection_pool
        self._conn: AbstractConnection | None = None
        self._conn_loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[tuple[str, asyncio.Future[bytes | None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def get(self, key: str) -> bytes | None:
        """The value of ``key`` (None when absent).

        Raises:
            redis.exceptions.RedisError, OSError: Redis could not answer.
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes | None] = loop.create_future()
        self._waiting.append((key, answer))
        sender = self._sender
        if sender is None or sender.done() or sender.get_loop() is not loop:
            self._sender = loop.create_task(self._send())
        return await answer

    async def _send(self) -> None:
        """Ask for what is waiting, as long as something is."""
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                values = await self._mget([key for key, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every read of the batch, which raises it
                for _, answer in batch:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            except BaseException:  # cancelled (the loop is shutting down): nobody is left to answer
                for _, answer in batch:
                    answer.cancel()
                raise
            for (_, answer), value in zip(batch, values, strict=True):
                if not answer.done():  # a read whose request was cancelled meanwhile
                    answer.set_result(value)

    async def _mget(self, keys: list[str]) -> list[bytes | None]:
        loop = asyncio.get_running_loop()
        conn = self._conn if self._conn_loop is loop else None
        served = conn is not None  # it answered before: a failure may be a restart of Redis since
        if conn is None:
            await self._drop()  # of another event loop (a test's), if any
            conn = self._conn = self._make()
            self._conn_loop = loop
        try:
            return await self._ask(conn, keys)
        except (redis.exceptions.ConnectionError, OSError):
            if not served:
                raise
            conn = self._conn = self._make()
            return await self._ask(conn, keys)

    async def _ask(self, conn: AbstractConnection, keys: list[str]) -> list[bytes | None]:
        try:
            await conn.send_command("MGET", *keys)
            values = await conn.read_response()
        except BaseException:
            self._conn = None
            await conn.disconnect()
            raise
        return cast("list[bytes | None]", values)

    def _make(self) -> AbstractConnection:
        pool = self._pool
        conn: AbstractConnection = pool.connection_class(**pool.connection_kwargs)
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()

    async def aclose(self) -> None:
        """Close the connection."""
        await self._drop()


class CacheReads:
    """How this process's reads of the cache went, by outcome (served as ``/metrics`` counters)."""

    __slots__ = ("deleted", "hits", "misses", "skipped")

    def __init__(self) -> None:
        #: A finished record answered from the cache.
        self.hits = 0
        #: Not cached (unfinished, never read, expired): read from PostgreSQL.
        self.misses = 0
        #: A deleted task's tombstone: answered "not found" without PostgreSQL.
        self.deleted = 0
        #: The cache was not asked or could not answer (Redis failing, writes waiting).
        self.skipped = 0

    def counts(self) -> dict[str, int]:
        """Each outcome and its count."""
        return {"hit": self.hits, "miss": self.misses, "deleted": self.deleted, "skipped": self.skipped}


class AsyncRecordCache:
    """The API's side of the cache (async client).

    Args:
        client: Redis, database ``MAIE_REDIS_RESULTS_DB``.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.backlog = Backlog()
        self._put = client.register_script(PUT_LUA)
        self._gets = QuickGets(client)
        self.reads = CacheReads()

    async def get(self, task_id: str) -> TaskRecord | None:
        """The cached record of ``task_id``; None when it is not cached or the cache cannot answer.

        Raises:
            NotFoundError: if the task was deleted (its tombstone).
        """
        backlog, reads = self.backlog, self.reads
        if (backlog.writes or backlog.down) and not await self.settle():
            reads.skipped += 1
            return None
        try:
            # The client does not decode responses: a value is bytes.
            data = await self._gets.get(record_cache_key(task_id))
        except _FAILED as exc:
            backlog.failed(exc)
            reads.skipped += 1
            return None
        if backlog.down:
            backlog.answered()
        if data is None:
            reads.misses += 1
            return None
        if data == TOMBSTONE:
            reads.deleted += 1
        else:
            reads.hits += 1
        return _record_of(task_id, data)

    async def aclose(self) -> None:
        """Close the connections of the hot read (the client's pool is closed with the client)."""
        await self._gets.aclose()

    async def fill(self, revised: Revised, read_at: float) -> None:
        """Cache a finished record read from PostgreSQL at ``read_at`` (``time.monotonic()``) on a miss."""
        if not revised.record.status.terminal or time.monotonic() - read_at > FILL_WINDOW_S:
            return
        if self.backlog.writes or self.backlog.down:
            return
        try:
            await self._put(
                keys=[record_cache_key(revised.record.task_id)], args=[entry_of(revised), ENTRY_TTL_S]
            )
        except _FAILED as exc:
            self.backlog.failed(exc)

    async def put(self, revised: Revised | None) -> None:
        """Cache a record a write just committed (a finished one; None or unfinished: nothing)."""
        writes = _writes(revised)
        if writes:
            self.backlog.add(writes)
            await self.settle()

    async def forget(self, task_ids: Iterable[str]) -> None:
        """Write tombstones for tasks a committed transaction deleted."""
        writes = dict.fromkeys(task_ids, TOMBSTONE)
        if writes:
            self.backlog.add(writes)
            await self.settle()

    async def settle(self) -> bool:
        """Make the writes waiting in the backlog; whether Redis took them all (never raises).

        With nothing waiting, whether Redis may be tried (it answered, or its back-off is over).
        """
        if not self.backlog.usable():
            return False
        writes = self.backlog.snapshot()
        if not writes:
            return True
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for task_id, value in writes.items():
                    key = record_cache_key(task_id)
                    if value == TOMBSTONE:
                        pipe.set(key, TOMBSTONE, ex=TOMBSTONE_TTL_S)
                    else:
                        await self._put(keys=[key], args=[value, ENTRY_TTL_S], client=pipe)
                await pipe.execute()
        except _FAILED as exc:
            self.backlog.failed(exc)
            return False
        self.backlog.done(writes)
        return True


class RecordCache:
    """The worker's side of the cache (blocking client): puts and tombstones, no reads.

    Args:
        client: Redis, database ``MAIE_REDIS_RESULTS_DB``.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.backlog = Backlog()
        self._put = client.register_script(PUT_LUA)

    def put(self, revised: Revised | None) -> None:
        """Cache a record a write just committed (a finished one; None or unfinished: nothing)."""
        writes = _writes(revised)
        if writes:
            self.backlog.add(writes)
            self.settle()

    def forget(self, task_ids: Iterable[str]) -> None:
        """Write tombstones for tasks a committed transaction deleted."""
        writes = dict.fromkeys(task_ids, TOMBSTONE)
        if writes:
            self.backlog.add(writes)
            self.settle()

    def settle(self) -> bool:
        """Make the writes waiting in the backlog; whether Redis took them all (never raises)."""
        if not self.backlog.writes:
            return True
        if not self.backlog.usable():
            return False
        writes = self.backlog.snapshot()
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for task_id, value in writes.items():
                    key = record_cache_key(task_id)
                    if value == TOMBSTONE:
                        pipe.set(key, TOMBSTONE, ex=TOMBSTONE_TTL_S)
                    else:
                        self._put(keys=[key], args=[value, ENTRY_TTL_S], client=pipe)
                pipe.execute()
        except _FAILED as exc:
            self.backlog.failed(exc)
            return False
        self.backlog.done(writes)
        return True
