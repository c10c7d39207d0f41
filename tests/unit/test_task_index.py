"""The tenant task index and cursor paging, against a real Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from maie.errors import InvalidRequestError
from maie.schemas import TaskStatus
from maie.store import task_key
from maie.store.keys import tenant_tasks_key
from maie.store.task_index import decode_cursor, encode_cursor
from tests.fixtures.records import make_record


@pytest.fixture
def store(async_store):
    """The API's async store (tests/fixtures/store.py): these tests use it by that name."""
    return async_store


async def _add(store, tenant="acme", at=None, status=TaskStatus.PENDING):
    record = make_record(str(uuid.uuid4()))
    record.tenant = tenant
    record.status = status
    record.submitted_at = at or datetime.now(UTC)
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

    async def test_newest_first_across_pages_with_ties(self, store):
        base = datetime.now(UTC) - timedelta(minutes=30)
        records = [await _add(store, at=base + timedelta(seconds=i // 2)) for i in range(7)]  # pairs tie
        await _add(store, tenant="other")
        ids, pages = await _all_pages(store, 3, statuses=())
        expected = [
            r.task_id for r in sorted(records, key=lambda r: (r.submitted_at, r.task_id), reverse=True)
        ]
        assert ids == expected
        assert pages == 3

    async def test_last_full_page_has_no_next_cursor(self, store):
        for _ in range(4):
            await _add(store)
        records, cursor = await store.task_page("acme", statuses=(), limit=4, cursor=None)
        assert len(records) == 4
        assert cursor is None

    async def test_new_tasks_do_not_shift_pages(self, store):
        base = datetime.now(UTC) - timedelta(minutes=30)
        old = [await _add(store, at=base + timedelta(seconds=i)) for i in range(4)]
        first, cursor = await store.task_page("acme", statuses=(), limit=2, cursor=None)
        await _add(store, at=base + timedelta(hours=1))  # arrives between two page requests
        second, _ = await store.task_page("acme", statuses=(), limit=2, cursor=cursor)
        assert [r.task_id for r in first + second] == [r.task_id for r in reversed(old)]

    async def test_status_filter(self, store):
        done = [await _add(store, status=TaskStatus.COMPLETE) for _ in range(3)]
        for _ in range(3):
            await _add(store)
        ids, _ = await _all_pages(store, 2, statuses={"COMPLETE"})
        assert sorted(ids) == sorted(r.task_id for r in done)

    async def test_expired_tasks_are_dropped_from_the_index(self, store):
        kept = await _add(store)
        gone = await _add(store)
        await store.client.delete(task_key(gone.task_id))
        records, _ = await store.task_page("acme", statuses=(), limit=10, cursor=None)
        assert [r.task_id for r in records] == [kept.task_id]
        assert await store.client.zcard(tenant_tasks_key("acme")) == 1

    async def test_entries_older_than_the_ttl_are_trimmed(self, store):
        await _add(store, at=datetime.now(UTC) - timedelta(hours=2))  # the TTL is one hour
        recent = await _add(store)
        records, _ = await store.task_page("acme", statuses=(), limit=10, cursor=None)
        assert [r.task_id for r in records] == [recent.task_id]


class TestCursor:
    """Cursors are opaque and checked."""

    def test_round_trip(self):
        entry = f"{1:017d}:{uuid.uuid4()}"
        assert decode_cursor(encode_cursor(entry)) == entry

    @pytest.mark.parametrize("cursor", ["", "!!!", encode_cursor("../../etc"), encode_cursor("1:2")])
    def test_foreign_cursor_is_refused(self, cursor):
        with pytest.raises(InvalidRequestError, match="invalid cursor"):
            decode_cursor(cursor)
