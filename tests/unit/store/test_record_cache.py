"""The cache of finished task records in Redis, on a real PostgreSQL and a real Redis.

Races are played out step by step: a reader's PostgreSQL read and its later fill of the cache are
separate calls here, with the write or deletion it races made in between.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import redis
import redis.asyncio as aioredis
import redis.exceptions

from maie.api.queries import load_task
from maie.errors import NotFoundError, StoreUnavailableError
from maie.schemas import (
    Results,
    ResultVersion,
    TaskStatus,
    Versions,
    WebhookAttempt,
    WebhookDelivery,
    WebhookState,
)
from maie.store import AsyncTaskStore, TaskStore
from maie.store.keys import record_cache_key
from maie.store.record_cache import FILL_WINDOW_S, TOMBSTONE, QuickGets
from maie.store.sql import records
from maie.up.redis import EmbeddedRedis
from tests.fixtures.postgres import TEST_SETTINGS, query
from tests.fixtures.records import make_record
from tests.fixtures.store import STORE_TTL_S

TASK = "0b0c8f57-8a39-4d7e-9d0f-6a1f0f1f2a3b"


def _complete(record):
    record.status = TaskStatus.COMPLETE
    record.completed_at = datetime.now(UTC)


def _attempt(code: int) -> WebhookAttempt:
    return WebhookAttempt(at=datetime.now(UTC), status_code=code, duration_s=0.1)


def _attempted(record):
    """A webhook delivery's first attempt, a 500 (what the worker records on a finished task)."""
    record.webhooks.append(
        WebhookDelivery(
            event_id="e1", event="task.completed", state=WebhookState.PENDING, attempts=[_attempt(500)]
        )
    )


def _retried(record):
    record.webhooks[0].attempts.append(_attempt(200))


def _codes(record) -> list[int | None]:
    return [a.status_code for w in record.webhooks for a in w.attempts]


async def _finished(store: AsyncTaskStore, task_id: str = TASK, tenant: str = "acme"):
    record = make_record(task_id)
    record.tenant = tenant
    await store.create(record)
    return (await store.update(task_id, _complete)).record


def _speakers_renamed(n: int) -> ResultVersion:
    return ResultVersion(
        version=n,
        created_at=datetime.now(UTC),
        kind="speakers",
        results=Results(raw_transcript=f"text of {n}"),
        versions=Versions(pipeline_version="test"),
    )


def _cached(url: str, task_id: str = TASK) -> bytes | None:
    client = redis.Redis.from_url(url)
    try:
        return client.get(record_cache_key(task_id))
    finally:
        client.close()


def _drop(url: str, task_id: str = TASK) -> None:
    client = redis.Redis.from_url(url)
    client.delete(record_cache_key(task_id))
    client.close()


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of this test's own (it may be flushed whole, stopped and started again)."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


class TestReads:
    """What a poller reads."""

    async def test_a_finished_record_is_cached_and_answered_while_postgres_is_away(
        self, async_store, results_db
    ):
        await _finished(async_store)
        assert _cached(results_db) is not None, "the write that finished the task put it"
        offline = AsyncTaskStore.from_urls(
            "postgresql://maie@127.0.0.1:1/maie", results_db, ttl_s=STORE_TTL_S, settings=TEST_SETTINGS
        )
        try:
            assert (await offline.get(TASK)).status == TaskStatus.COMPLETE, "answered from the cache"
            with pytest.raises(StoreUnavailableError):
                await offline.get("not-cached")
        finally:
            await offline.close()

    async def test_an_unfinished_record_is_never_cached(self, async_store, results_db):
        await async_store.create(make_record(TASK))
        await async_store.get(TASK)
        await async_store.update(TASK, lambda r: setattr(r, "status", TaskStatus.PREPROCESSING))
        assert (await async_store.get(TASK)).status == TaskStatus.PREPROCESSING
        assert _cached(results_db) is None

    async def test_a_miss_fills_the_cache_from_postgres(self, async_store, results_db):
        await _finished(async_store)
        _drop(results_db)
        assert (await async_store.get(TASK)).status == TaskStatus.COMPLETE
        assert _cached(results_db) is not None, "the read put what it found"

    async def test_tenants_stay_apart_with_a_cached_record(self, async_store, results_db):
        await _finished(async_store, tenant="acme")
        await async_store.get(TASK)
        assert _cached(results_db) is not None
        services = SimpleNamespace(store=async_store)
        assert (await load_task(services, TASK, "acme")).tenant == "acme"
        with pytest.raises(NotFoundError):
            await load_task(services, TASK, "other")

    async def test_reads_are_counted_by_outcome(self, async_store, results_db):
        reads = async_store.cache.reads
        await _finished(async_store)
        _drop(results_db)
        await async_store.get(TASK)  # a miss, which fills
        await async_store.get(TASK)  # then a hit
        await async_store.delete_task(TASK, tenant="acme")
        with pytest.raises(NotFoundError):
            await async_store.get(TASK)  # the tombstone
        assert reads.counts() == {"hit": 1, "miss": 1, "deleted": 1, "skipped": 0}


class TestWrites:
    """A write after a cached read is what the next read sees."""

    async def test_api_and_worker_writes_are_visible_at_once(self, async_store, store):
        await _finished(async_store)
        assert not (await async_store.get(TASK)).webhooks
        store.update(TASK, _attempted)  # the worker's store, another process in production
        assert _codes(await async_store.get(TASK)) == [500]
        await async_store.update(TASK, _retried)
        assert _codes(await async_store.get(TASK)) == [500, 200]

    async def test_a_new_result_version_is_visible_at_once(self, async_store, store):
        await _finished(async_store)
        assert (await async_store.get(TASK)).result_version is None
        store.add_result(TASK, _speakers_renamed)
        assert (await async_store.get(TASK)).result_version == 1
        await async_store.add_result(TASK, _speakers_renamed)
        assert (await async_store.get(TASK)).result_version == 2

    async def test_a_late_fill_never_replaces_a_newer_write(self, async_store, store):
        await _finished(async_store)
        read_at = time.monotonic()
        older = await async_store.database.run(records.get(TASK))  # a reader's PostgreSQL read ...
        store.update(TASK, _attempted)  # ... a write commits and puts revision n + 1 ...
        await async_store.cache.fill(older, read_at)  # ... and then the reader fills revision n
        assert _codes(await async_store.get(TASK)) == [500]

    async def test_a_late_put_never_replaces_a_newer_one(self, async_store, store):
        await _finished(async_store)
        older = await async_store.database.run(records.get(TASK))
        store.update(TASK, _attempted)
        await async_store.cache.put(older)  # a writer whose put lands after the next writer's
        assert _codes(await async_store.get(TASK)) == [500]

    async def test_a_fill_too_late_is_not_made(self, async_store, results_db):
        await _finished(async_store)
        _drop(results_db)
        older = await async_store.database.run(records.get(TASK))
        await async_store.cache.fill(older, time.monotonic() - FILL_WINDOW_S - 1)
        assert _cached(results_db) is None


class TestDeletion:
    """DELETE then GET is 404, whatever a reader racing it does."""

    async def test_delete_then_get_is_404(self, async_store, results_db):
        await _finished(async_store)
        await async_store.get(TASK)
        await async_store.delete_task(TASK, tenant="acme")
        assert _cached(results_db) == TOMBSTONE
        with pytest.raises(NotFoundError):
            await async_store.get(TASK)

    async def test_a_reader_racing_the_delete_cannot_bring_it_back(self, async_store, results_db):
        await _finished(async_store)
        _drop(results_db)
        read_at = time.monotonic()
        before = await async_store.database.run(records.get(TASK))  # read just before the delete
        await async_store.delete_task(TASK, tenant="acme")
        await async_store.cache.fill(before, read_at)  # the late fill of what it read
        assert _cached(results_db) == TOMBSTONE
        with pytest.raises(NotFoundError):
            await async_store.get(TASK)

    async def test_a_purge_leaves_tombstones(self, async_store, store, results_db):
        await _finished(async_store)
        await async_store.get(TASK)
        assert store.purge(timedelta(0)) is not None
        with pytest.raises(NotFoundError):
            await async_store.get(TASK)
        assert _cached(results_db) == TOMBSTONE


class TestRedisTrouble:
    """Redis is a cache here: wiping it or losing it loses nothing and fails no read."""

    async def test_flushall_loses_nothing(self, database, private_redis):
        url = private_redis.url
        store = AsyncTaskStore.from_urls(database, url, ttl_s=STORE_TTL_S, settings=TEST_SETTINGS)
        try:
            await _finished(store)
            await store.update(TASK, _attempted)
            assert _cached(url) is not None
            wipe = redis.Redis.from_url(url)
            wipe.flushall()
            wipe.close()
            after = await store.get(TASK)
            assert after.status == TaskStatus.COMPLETE
            assert _codes(after) == [500], "the latest write, from PostgreSQL"
            assert query(database, "SELECT status FROM tasks WHERE task_id = %s", TASK) == [("COMPLETE",)]
        finally:
            await store.close()

    async def test_redis_down_reads_and_writes_go_on(self, database):
        store = AsyncTaskStore.from_urls(
            database, "redis://127.0.0.1:1/2", ttl_s=STORE_TTL_S, settings=TEST_SETTINGS
        )
        try:
            await _finished(store)
            await store.update(TASK, _attempted)
            assert _codes(await store.get(TASK)) == [500]
        finally:
            await store.close()

    async def test_a_write_redis_missed_is_made_when_it_is_back(self, database, private_redis, tmp_path):
        """Redis stops with revision n cached and comes back with it (append-only file)."""
        url = results_url_of(private_redis)
        api = AsyncTaskStore.from_urls(database, url, ttl_s=STORE_TTL_S, settings=TEST_SETTINGS)
        worker = TaskStore.from_urls(database, url, settings=TEST_SETTINGS)
        try:
            await _finished(api)
            await api.get(TASK)
            private_redis.stop()
            worker.update(TASK, _attempted)  # Redis is away: the put waits in the worker
            await api.update(TASK, _retried)  # and in the API
            private_redis.start()
            assert _cached(url) is not None, "the stale copy came back with Redis"
            assert _codes(await api.get(TASK)) == [500, 200]
            deadline = time.monotonic() + 10
            # The API settles before its next read once its back-off is over, the worker at its heartbeat.
            while not (await api.cache.settle() and worker.cache.settle()):
                assert time.monotonic() < deadline, "the missed writes are made"
                await asyncio.sleep(0.1)
            fresh = AsyncTaskStore.from_urls(database, url, ttl_s=STORE_TTL_S, settings=TEST_SETTINGS)
            try:
                assert _codes(await fresh.get(TASK)) == [500, 200], "another API process"
            finally:
                await fresh.close()
        finally:
            worker.close()
            await api.close()


def results_url_of(server: EmbeddedRedis) -> str:
    """The server's database 2."""
    return server.url.rsplit("/", 1)[0] + "/2"


class TestQuickGets:
    """The hot read's MGETs, on a private real Redis that is stopped and restarted."""

    @pytest.fixture
    async def quick(self, private_redis):
        """A client of the private Redis, and the QuickGets that reads through it."""
        client = aioredis.Redis.from_url(private_redis.url)
        gets = QuickGets(client)
        yield client, gets
        await gets.aclose()
        await client.aclose()

    async def test_reads_survive_a_restart_and_fail_while_down(self, quick, private_redis):
        client, gets = quick
        await client.set("k", b"v1")
        assert await gets.get("k") == b"v1"
        assert await gets.get("absent") is None
        private_redis.stop()
        with pytest.raises((redis.exceptions.ConnectionError, OSError)):
            await gets.get("k")
        private_redis.start()  # same port, same data (its append-only file)
        assert await gets.get("k") == b"v1"
        private_redis.stop()
        private_redis.start()
        assert await gets.get("k") == b"v1", "a connection broken by the restart is replaced"

    async def test_reads_asked_together_go_together_each_answered_its_own(self, quick):
        client, gets = quick
        await client.mset({f"k{n}": f"v{n}".encode() for n in range(20)})
        await client.config_resetstat()
        answers = await asyncio.gather(*(gets.get(f"k{n}") for n in range(20)), gets.get("none"))
        assert answers == [f"v{n}".encode() for n in range(20)] + [None]
        stats = await client.info("commandstats")
        assert stats["cmdstat_mget"]["calls"] < 21, "reads of one moment share a round trip"
        assert "cmdstat_get" not in stats

    async def test_a_cancelled_read_leaves_the_others_answered(self, quick):
        client, gets = quick
        await client.set("k", b"v")
        first = asyncio.ensure_future(gets.get("k"))
        second = asyncio.ensure_future(gets.get("k"))
        await asyncio.sleep(0)
        first.cancel()
        assert await second == b"v"
        assert await gets.get("k") == b"v"
