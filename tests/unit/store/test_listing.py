"""A tenant's tasks, newest first, filtered and keyset-paged, on a real PostgreSQL."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from maie.errors import InvalidRequestError
from maie.schemas import TaskStatus
from maie.store.sql import TaskFilter
from maie.store.sql.listing import decode_cursor, encode_cursor, list_tasks
from maie.store.sql.operations import Work
from maie.store.sql.records import insert_tasks
from tests.fixtures.records import make_record


def _record(tenant="acme", at=None, status=TaskStatus.PENDING, template_id=None, batch_id=None):
    record = make_record(str(uuid.uuid4()))
    record.tenant = tenant
    record.status = status
    record.submitted_at = at or datetime.now(UTC)
    record.request = type(record.request)(
        features=record.request.features, asr_backend="whisper", template_id=template_id
    )
    record.batch_id = batch_id
    return record


async def _add(store, **kwargs):
    record = _record(**kwargs)
    await store.create(record)
    return record


async def _all_pages(store, limit, **kwargs):
    ids, cursor, pages = [], None, 0
    while True:
        records, cursor = await store.task_page("acme", limit=limit, cursor=cursor, **kwargs)
        ids += [r.task_id for r in records]
        pages += 1
        assert pages < 100, "paging does not end"
        if cursor is None:
            return ids, pages


class TestPaging:
    """Newest first, every task once, stable under ties and new arrivals."""

    async def test_newest_first_across_pages_with_ties(self, async_store):
        base = datetime.now(UTC) - timedelta(minutes=30)
        records = [
            await _add(async_store, at=base + timedelta(seconds=i // 2)) for i in range(7)
        ]  # pairs tie
        await _add(async_store, tenant="other")
        ids, pages = await _all_pages(async_store, 3)
        expected = [
            r.task_id for r in sorted(records, key=lambda r: (r.submitted_at, r.task_id), reverse=True)
        ]
        assert ids == expected
        assert pages == 3

    async def test_last_full_page_has_no_next_cursor(self, async_store):
        for _ in range(4):
            await _add(async_store)
        records, cursor = await async_store.task_page("acme", limit=4, cursor=None)
        assert len(records) == 4
        assert cursor is None

    async def test_new_tasks_do_not_shift_pages(self, async_store):
        base = datetime.now(UTC) - timedelta(minutes=30)
        old = [await _add(async_store, at=base + timedelta(seconds=i)) for i in range(4)]
        first, cursor = await async_store.task_page("acme", limit=2, cursor=None)
        await _add(async_store, at=base + timedelta(hours=1))  # arrives between two page requests
        second, _ = await async_store.task_page("acme", limit=2, cursor=cursor)
        assert [r.task_id for r in first + second] == [r.task_id for r in reversed(old)]

    async def test_discarded_tasks_are_not_listed(self, async_store):
        kept = await _add(async_store)
        gone = await _add(async_store)
        await async_store.discard(gone.task_id)
        records, _ = await async_store.task_page("acme", limit=10, cursor=None)
        assert [r.task_id for r in records] == [kept.task_id]

    async def test_a_redis_cursor_still_pages(self, async_store):
        """Cursors handed out by the Redis task index keep working after the move."""
        base = datetime.now(UTC) - timedelta(minutes=5)
        records = [await _add(async_store, at=base + timedelta(seconds=i)) for i in range(3)]
        newest = records[-1]
        micros = (newest.submitted_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        # The Redis index's cursor: its member "<17-digit µs>:<task id>" in unpadded URL-safe base64.
        redis_cursor = (
            base64.urlsafe_b64encode(f"{micros:017d}:{newest.task_id}".encode()).decode().rstrip("=")
        )
        found, _ = await async_store.task_page("acme", limit=5, cursor=redis_cursor)
        assert [r.task_id for r in found] == [r.task_id for r in reversed(records[:-1])]


class TestFilters:
    """Every filter narrows; they combine."""

    async def test_status_filter(self, async_store):
        done = [await _add(async_store, status=TaskStatus.COMPLETE) for _ in range(3)]
        failed = await _add(async_store, status=TaskStatus.FAILED)
        for _ in range(3):
            await _add(async_store)
        ids, _ = await _all_pages(async_store, 2, statuses={"COMPLETE"})
        assert sorted(ids) == sorted(r.task_id for r in done)
        ids, _ = await _all_pages(async_store, 2, statuses={"COMPLETE", "FAILED"})
        assert sorted(ids) == sorted(r.task_id for r in [*done, failed])

    async def test_date_template_and_batch_filters(self, async_store):
        now = datetime.now(UTC)
        old = await _add(async_store, at=now - timedelta(days=10), template_id="meeting_notes_v1")
        mid = await _add(async_store, at=now - timedelta(days=5), template_id="meeting_notes_v1")
        new = await _add(async_store, at=now - timedelta(days=1))

        async def ids(**filters):
            found, _ = await async_store.task_page(
                "acme", limit=50, cursor=None, filters=TaskFilter(**filters)
            )
            return [r.task_id for r in found]

        assert await ids(submitted_after=now - timedelta(days=6)) == [new.task_id, mid.task_id]
        assert await ids(submitted_before=now - timedelta(days=5)) == [old.task_id]
        assert await ids(template_id="meeting_notes_v1") == [mid.task_id, old.task_id]
        assert await ids(template_id="meeting_notes_v1", submitted_after=now - timedelta(days=6)) == [
            mid.task_id
        ]

    async def test_batch_filter(self, async_store):
        from maie.schemas import BatchRecord

        records = [_record(batch_id="b1") for _ in range(2)]
        batch = BatchRecord(
            batch_id="b1", tenant="acme", created_at=datetime.now(UTC), request=records[0].request,
            task_ids=[r.task_id for r in records],
        )  # fmt: skip
        await async_store.create_batch(batch, records)
        await _add(async_store)
        found, _ = await async_store.task_page(
            "acme", limit=50, cursor=None, filters=TaskFilter(batch_id="b1")
        )
        assert sorted(r.task_id for r in found) == sorted(batch.task_ids)


class TestCursor:
    """Cursors are opaque and checked."""

    def test_round_trip(self):
        at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        task_id = str(uuid.uuid4())
        assert decode_cursor(encode_cursor(at, task_id)) == (at, task_id)

    @pytest.mark.parametrize(
        "cursor", ["", "!!!", "Li4vLi4vZXRj", encode_cursor(datetime(2026, 1, 2, tzinfo=UTC), "x'; --")]
    )
    def test_foreign_cursor_is_refused(self, cursor):
        with pytest.raises(InvalidRequestError, match="invalid cursor"):
            decode_cursor(cursor)

    @pytest.mark.parametrize("limit", [0, 1001])
    async def test_limit_is_checked(self, async_store, limit):
        with pytest.raises(InvalidRequestError, match="limit"):
            await async_store.task_page("acme", limit=limit, cursor=None)


def _plan(url: str, work: Work) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement ``work`` runs, as the plan's top node."""
    statement = next(work.make())
    with psycopg.connect(url) as conn:
        query = psycopg.sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}").format(
            statement.sql
            if isinstance(statement.sql, psycopg.sql.Composable)
            else psycopg.sql.SQL(statement.sql)
        )
        (plan,) = conn.execute(query, statement.params).fetchone()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


class TestDeepPages:
    """A deep page reads what the first page reads: the plan walks the index from the cursor."""

    async def test_deep_page_costs_like_the_first(self, store, database):
        base = datetime.now(UTC) - timedelta(days=30)
        records = [_record(at=base + timedelta(seconds=i)) for i in range(3000)]
        records += [_record(tenant="other", at=base + timedelta(seconds=i)) for i in range(1000)]
        store.database.run(Work(lambda: insert_tasks(records), transaction=True))
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("ANALYZE tasks")
        deep = records[2999 - 2500]  # the cursor of page 126 of 20
        plans = {
            "first": _plan(database, list_tasks("acme", TaskFilter(), limit=20, cursor=None)),
            "deep": _plan(
                database,
                list_tasks(
                    "acme", TaskFilter(), limit=20, cursor=encode_cursor(deep.submitted_at, deep.task_id)
                ),
            ),
        }
        for name, plan in plans.items():
            scans = [
                n for n in _nodes(plan) if n.get("Index Name") == "tasks_tenant_submitted_at_task_id_idx"
            ]
            assert scans, f"{name} page does not use the tenant index: {plan}"
            assert scans[0]["Node Type"] == "Index Scan"
            assert scans[0]["Scan Direction"] == "Backward"
            assert scans[0]["Actual Rows"] <= 21, f"{name} page reads {scans[0]['Actual Rows']} rows"
        blocks = {
            name: plan["Shared Hit Blocks"] + plan["Shared Read Blocks"] for name, plan in plans.items()
        }
        assert blocks["deep"] <= blocks["first"] + 3, blocks
