"""Task records on a real PostgreSQL: the properties the Redis store's tests hold, and the new ones."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import psycopg
import pytest

from maie.errors import ConflictError, NotFoundError, StoreUnavailableError
from maie.schemas import StageName, StageRecord, StageState, TaskStatus, WebhookDelivery, WebhookState
from maie.store import AsyncTaskStore
from tests.fixtures.postgres import TEST_SETTINGS
from tests.fixtures.records import make_record


def _rows(url, query, *params):
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


class TestAsyncStore:
    """What the API does."""

    async def test_create_get_and_queue_depth(self, async_store):
        await async_store.create(make_record())
        assert (await async_store.get("t1")).tenant == "acme"
        assert await async_store.queue_depth() == 1
        await async_store.discard("t1")
        assert await async_store.queue_depth() == 0
        with pytest.raises(NotFoundError):
            await async_store.get("t1")

    async def test_creating_twice_keeps_the_first(self, async_store):
        await async_store.create(make_record())
        second = make_record()
        second.tenant = "other"
        await async_store.create(second)
        assert (await async_store.get("t1")).tenant == "acme"

    async def test_get_many_keeps_order_and_marks_missing(self, async_store):
        for task_id in ("a", "b"):
            await async_store.create(make_record(task_id))
        found = await async_store.get_many(["b", "gone", "a"])
        assert [r.task_id if r else None for r in found] == ["b", None, "a"]
        assert await async_store.get_many([]) == []

    async def test_stuck_tasks_leave_the_queue_depth(self, database, results_db):
        store = AsyncTaskStore.from_urls(database, results_db, ttl_s=60, settings=TEST_SETTINGS)
        old = make_record("old")
        old.submitted_at = datetime(2020, 1, 1, tzinfo=UTC)
        await store.create(old)
        await store.create(make_record("new"))
        assert await store.queue_depth() == 1
        await store.close()

    async def test_unreachable_database(self, results_db):
        store = AsyncTaskStore.from_urls(
            "postgresql://maie@127.0.0.1:1/maie", results_db, ttl_s=60, settings=TEST_SETTINGS
        )
        assert await store.ping_database() is False
        assert await store.ping_redis() is True
        assert await store.ping() is False, "a submission needs both"
        with pytest.raises(StoreUnavailableError, match=r"PostgreSQL\) cannot be reached"):
            await store.get("t1")
        await store.close()

    async def test_unreachable_redis(self, database):
        store = AsyncTaskStore.from_urls(database, "redis://127.0.0.1:1/1", ttl_s=60, settings=TEST_SETTINGS)
        assert await store.ping_redis() is False
        assert await store.ping() is False
        with pytest.raises(StoreUnavailableError, match="Redis cannot be reached"):
            await store.workers_active()
        await store.close()

    async def test_add_job_only_to_a_complete_task_of_the_tenant(self, async_store):
        await async_store.create(make_record())
        job = StageRecord(name=StageName.SUMMARIZE, job_id="j1", template_id="meeting_notes_v1")
        with pytest.raises(ConflictError, match="has no transcript yet"):
            await async_store.add_job("t1", job, tenant="acme")
        await async_store.update("t1", lambda r: setattr(r, "status", TaskStatus.COMPLETE))
        with pytest.raises(NotFoundError):
            await async_store.add_job("t1", job, tenant="other")
        record = await async_store.add_job("t1", job, tenant="acme")
        assert record.job("j1").template_id == "meeting_notes_v1"
        await async_store.remove_job("t1", "j1")
        with pytest.raises(KeyError):
            (await async_store.get("t1")).job("j1")


class TestUpdate:
    """What the worker does: read-modify-write under the row lock, status only forward."""

    async def test_update_is_atomic_under_contention(self, async_store, store):
        """Concurrent read-modify-writes on separate connections lose nothing."""
        await async_store.create(make_record())

        def bump() -> None:
            for _ in range(25):
                store.update("t1", lambda r: setattr(r.stages[0], "attempts", r.stages[0].attempts + 1))

        threads = [threading.Thread(target=bump) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.get("t1").stages[0].attempts == 100

    async def test_terminal_status_leaves_the_queue(self, async_store, store):
        await async_store.create(make_record())
        store.update("t1", lambda r: setattr(r, "status", TaskStatus.COMPLETE))
        assert await async_store.queue_depth() == 0

    async def test_a_failing_change_leaves_the_record(self, async_store, store):
        await async_store.create(make_record())

        def change(record):
            record.status = TaskStatus.PREPROCESSING
            raise ValueError("halfway")

        with pytest.raises(ValueError, match="halfway"):
            store.update("t1", change)
        assert store.get("t1").status == TaskStatus.PENDING

    @pytest.mark.parametrize(
        ("start", "target"),
        [
            (TaskStatus.PROCESSING_ASR, TaskStatus.PREPROCESSING),
            (TaskStatus.COMPLETE, TaskStatus.PROCESSING_LLM),
            (TaskStatus.FAILED, TaskStatus.COMPLETE),
        ],
    )
    async def test_status_never_moves_back(self, async_store, store, start, target):
        await async_store.create(make_record())
        store.update("t1", lambda r: setattr(r, "status", start))
        with pytest.raises(ConflictError, match="cannot move"):
            store.update("t1", lambda r: setattr(r, "status", target))
        assert store.get("t1").status == start

    async def test_racing_stages_end_at_the_furthest_status(self, async_store, store):
        """A late duplicate racing the finish (the tracker's forward-only rule) cannot undo it."""
        await async_store.create(make_record())
        barrier = threading.Barrier(8)

        def advance(target: TaskStatus) -> None:
            barrier.wait()
            for _ in range(10):
                store.update(
                    "t1",
                    lambda r: setattr(r, "status", target) if target.rank > r.status.rank else None,
                )

        order = [
            TaskStatus.PREPROCESSING,
            TaskStatus.PROCESSING_ASR,
            TaskStatus.COMPLETE,
            TaskStatus.PROCESSING_LLM,
        ]
        threads = [threading.Thread(target=advance, args=(order[i % 4],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.get("t1").status == TaskStatus.COMPLETE

    async def test_missing_task(self, store):
        with pytest.raises(NotFoundError):
            store.update("nope", lambda _: None)


class TestProjection:
    """The stage and webhook rows repeat the record, whatever changed."""

    async def test_stage_and_delivery_rows_follow_the_record(self, async_store, store, database):
        await async_store.create(make_record())
        assert _rows(database, "SELECT stage_key, position, status FROM task_stages ORDER BY position") == [
            ("preprocess", 0, "pending"),
            ("transcribe", 1, "pending"),
        ]

        def run(record):
            record.stages[0].status = StageState.DONE
            record.stages[0].attempts = 2
            record.stages.append(StageRecord(name=StageName.SUMMARIZE, job_id="j1"))
            record.webhooks.append(
                WebhookDelivery(
                    event_id="e1", event="task.completed", state=WebhookState.PENDING, attempts=[]
                )
            )

        store.update("t1", run)
        assert _rows(
            database, "SELECT stage_key, position, status, attempts FROM task_stages ORDER BY position"
        ) == [
            ("preprocess", 0, "done", 2),
            ("transcribe", 1, "pending", 0),
            ("job:j1", 2, "pending", 0),
        ]
        assert _rows(database, "SELECT event_id, state, attempts FROM webhook_deliveries") == [
            ("e1", "pending", 0)
        ]
        await async_store.remove_job("t1", "j1")
        assert [r[0] for r in _rows(database, "SELECT stage_key FROM task_stages ORDER BY position")] == [
            "preprocess",
            "transcribe",
        ]


class TestClaims:
    """Idempotency-Key claims: set-if-free, overwrite, compare-and-delete."""

    async def test_claim_replace_release(self, async_store):
        assert await async_store.claim("k", b"first", 60) is None
        assert await async_store.claim("k", b"second", 60) == b"first"
        await async_store.release_claim("k", b"not mine")
        assert await async_store.claim("k", b"second", 60) == b"first"
        await async_store.replace_claim("k", b"done", 60)
        await async_store.release_claim("k", b"done")
        assert await async_store.claim("k", b"third", 60) is None

    async def test_an_expired_claim_is_free(self, async_store):
        assert await async_store.claim("k", b"old", 0) is None
        assert await async_store.claim("k", b"new", 60) is None
        assert await async_store.claim("k", b"other", 60) == b"new"

    async def test_racing_claims_make_one_winner(self, database, results_db):
        """Six API processes (one pool each) claim one key at once: exactly one gets it."""
        api = [
            AsyncTaskStore.from_urls(database, results_db, ttl_s=60, settings=TEST_SETTINGS) for _ in range(6)
        ]
        results = await asyncio.gather(*(s.claim("k", f"v{i}".encode(), 60) for i, s in enumerate(api)))
        for store in api:
            await store.close()
        winners = [i for i, held in enumerate(results) if held is None]
        assert len(winners) == 1
        assert {held for held in results if held is not None} == {f"v{winners[0]}".encode()}
