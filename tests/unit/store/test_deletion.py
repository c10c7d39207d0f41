"""Deleting tasks and batches, and the retention purge, on a real PostgreSQL: nothing is left behind."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from maie.errors import NotFoundError
from maie.schemas import BatchRecord, StageName, TaskStatus, WebhookDelivery, WebhookState
from maie.store.sql.deletion import RETENTION_LOCK
from tests.fixtures.records import make_record
from tests.fixtures.results import make_enhanced, make_result

#: Every table that holds rows of a task, and its task column.
TASK_TABLES = ("tasks", "task_stages", "webhook_deliveries", "artifacts", "result_versions", "search_texts")


def _left(url: str, task_id: str) -> dict[str, int]:
    """Rows of ``task_id`` in every task table (0 everywhere once it is gone)."""
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table} WHERE task_id = %s", (task_id,)).fetchone()[0]  # noqa: S608 - fixed names
            for table in TASK_TABLES
        }


@pytest.fixture
def finished(async_store, store):
    """A COMPLETE task with everything a task can have: artifacts, two versions, a webhook, search texts."""

    async def make(tenant="acme", at=None, batch_id=None):
        record = make_record(str(uuid.uuid4()))
        record.tenant = tenant
        record.batch_id = batch_id
        record.submitted_at = at or datetime.now(UTC)
        await async_store.create(record)
        return await fill(record)

    async def fill(record):
        task_id = record.task_id
        store.put_artifact(task_id, StageName.ENHANCE, make_enhanced("The budget."))
        store.put_result(task_id, make_result("the budget", clean=["The budget."]))

        def finish(r):
            r.status = TaskStatus.COMPLETE
            r.result_version = 1
            r.webhooks.append(
                WebhookDelivery(
                    event_id="e1", event="task.completed", state=WebhookState.PENDING, attempts=[]
                )
            )

        store.update(task_id, finish)
        store.add_result(task_id, lambda n: make_result("the budget", version=n, summary={"t": "plan"}))
        return store.get(task_id)

    make.fill = fill
    return make


class TestDeleteTask:
    """DELETE /v1/tasks/{id}: the record, every version, artifacts, search texts; 404 for others."""

    async def test_leaves_nothing(self, async_store, finished, database):
        task = await finished()
        assert all(_left(database, task.task_id).values()), "the fixture made a row in every table"
        deleted = await async_store.delete_task(task.task_id, tenant="acme")
        assert deleted.audio_path == task.audio_path
        assert _left(database, task.task_id) == dict.fromkeys(TASK_TABLES, 0)
        assert await async_store.search("acme", "budget") == ([], None)
        with pytest.raises(NotFoundError):
            await async_store.delete_task(task.task_id, tenant="acme")

    async def test_another_tenants_task_is_not_found_and_untouched(self, async_store, finished, database):
        task = await finished(tenant="other")
        before = _left(database, task.task_id)
        with pytest.raises(NotFoundError):
            await async_store.delete_task(task.task_id, tenant="acme")
        assert _left(database, task.task_id) == before

    async def test_a_task_deleted_mid_processing_stops_the_worker_cleanly(self, async_store, store, database):
        """Every write of a stage that was running finds the task gone: NotFoundError, nothing stored."""
        record = make_record(str(uuid.uuid4()))
        await async_store.create(record)
        await async_store.delete_task(record.task_id, tenant="acme")
        with pytest.raises(NotFoundError):
            store.update(record.task_id, lambda _: None)
        with pytest.raises(NotFoundError):
            store.put_artifact(record.task_id, StageName.TRANSCRIBE, make_enhanced("x"))
        with pytest.raises(NotFoundError):
            store.put_result(record.task_id, make_result("x"))
        assert _left(database, record.task_id) == dict.fromkeys(TASK_TABLES, 0)

    async def test_a_deleted_batch_member_leaves_its_batch_list(self, async_store, finished):
        records = [make_record(str(uuid.uuid4())) for _ in range(2)]
        for r in records:
            r.batch_id = "b1"
        batch = BatchRecord(
            batch_id="b1", tenant="acme", created_at=datetime.now(UTC), request=records[0].request,
            task_ids=[r.task_id for r in records],
        )  # fmt: skip
        await async_store.create_batch(batch, records)
        await async_store.delete_task(records[0].task_id, tenant="acme")
        assert (await async_store.get_batch("b1")).task_ids == [records[1].task_id]


class TestDeleteBatch:
    """DELETE /v1/batches/{id}: the batch and every task of it."""

    async def test_deletes_the_batch_and_its_tasks(self, async_store, finished, database):
        records = [make_record(str(uuid.uuid4())) for _ in range(3)]
        for r in records:
            r.batch_id = "b1"
        batch = BatchRecord(
            batch_id="b1", tenant="acme", created_at=datetime.now(UTC), request=records[0].request,
            task_ids=[r.task_id for r in records],
        )  # fmt: skip
        await async_store.create_batch(batch, records)
        await finished.fill(records[0])
        other = await finished()
        with pytest.raises(NotFoundError):
            await async_store.delete_batch("b1", tenant="other")
        deleted, tasks = await async_store.delete_batch("b1", tenant="acme")
        assert deleted.batch_id == "b1"
        assert sorted(t.task_id for t in tasks) == sorted(batch.task_ids)
        for r in records:
            assert _left(database, r.task_id) == dict.fromkeys(TASK_TABLES, 0)
        with pytest.raises(NotFoundError):
            await async_store.get_batch("b1")
        assert (await async_store.get(other.task_id)).status == TaskStatus.COMPLETE

    async def test_discard_batch_removes_what_create_batch_made(self, async_store, database):
        records = [make_record(str(uuid.uuid4())) for _ in range(2)]
        for r in records:
            r.batch_id = "b2"
        batch = BatchRecord(
            batch_id="b2", tenant="acme", created_at=datetime.now(UTC), request=records[0].request,
            task_ids=[r.task_id for r in records],
        )  # fmt: skip
        await async_store.create_batch(batch, records)
        assert await async_store.queue_depth() == 2
        await async_store.discard_batch(batch)
        assert await async_store.queue_depth() == 0
        for r in records:
            assert _left(database, r.task_id) == dict.fromkeys(TASK_TABLES, 0)


class TestPurge:
    """MAIE_RETENTION_DAYS: tasks older than the period go, with everything they have."""

    async def test_purges_old_tasks_only_in_short_transactions(self, async_store, store, finished, database):
        now = datetime.now(UTC)
        old = [await finished(at=now - timedelta(days=40 + n)) for n in range(3)]
        kept = await finished(at=now - timedelta(days=2))
        await async_store.claim("k-expired", b"x", 0)
        await async_store.claim("k-live", b"x", 600)
        first = store.purge(timedelta(days=30), limit=2)
        assert first is not None
        assert [r.task_id for r in first] == [old[2].task_id, old[1].task_id]  # oldest first
        second = store.purge(timedelta(days=30), limit=2)
        assert second is not None
        assert [r.task_id for r in second] == [old[0].task_id]
        assert store.purge(timedelta(days=30)) == []
        for r in old:
            assert _left(database, r.task_id) == dict.fromkeys(TASK_TABLES, 0)
        assert _left(database, kept.task_id)["result_versions"] == 2
        with psycopg.connect(database) as conn:
            assert [k for (k,) in conn.execute("SELECT key FROM idempotency_claims")] == ["k-live"]

    async def test_one_purge_at_a_time(self, store, finished, database):
        """A purge that finds another one running (another worker's) does nothing and says so."""
        old = await finished(at=datetime.now(UTC) - timedelta(days=40))
        with psycopg.connect(database) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (RETENTION_LOCK,))  # a purge under way
            assert store.purge(timedelta(days=30)) is None
            assert _left(database, old.task_id)["tasks"] == 1
        purged = store.purge(timedelta(days=30))
        assert purged is not None
        assert [r.task_id for r in purged] == [old.task_id]

    async def test_old_batches_go_with_their_last_task(self, async_store, store):
        old = datetime.now(UTC) - timedelta(days=60)
        record = make_record(str(uuid.uuid4()))
        record.batch_id = "b-old"
        record.submitted_at = old
        batch = BatchRecord(
            batch_id="b-old", tenant="acme", created_at=old, request=record.request, task_ids=[record.task_id]
        )
        await async_store.create_batch(batch, [record])
        assert [r.task_id for r in store.purge(timedelta(days=30)) or []] == [record.task_id]
        with pytest.raises(NotFoundError):
            await async_store.get_batch("b-old")
