"""Queue slots against MAIE_MAX_QUEUE_DEPTH, held in PostgreSQL beside the tasks they become."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from maie.schemas import BatchRecord, TaskStatus
from maie.store import AsyncTaskStore
from tests.fixtures.postgres import TEST_SETTINGS
from tests.fixtures.records import make_record


class TestSlots:
    """What a submission holds from before its body is read until its task is stored."""

    async def test_slots_count_with_unfinished_tasks(self, async_store, store):
        """Slots count with unfinished tasks against the limit; a stored task frees its slot."""
        assert await async_store.hold_slots(["a", "b"], limit=3, hold_s=60) is None
        assert await async_store.hold_slots(["c", "d"], limit=3, hold_s=60) == 2, "no room for two more"
        await async_store.create(make_record(), slots=["a"])  # the task takes a's place
        assert await async_store.hold_slots(["c"], limit=3, hold_s=60) is None
        assert await async_store.hold_slots(["d"], limit=3, hold_s=60) == 3
        await async_store.free_slots(["b", "c"])
        assert await async_store.hold_slots(["d"], limit=3, hold_s=60) is None
        store.update("t1", lambda r: setattr(r, "status", TaskStatus.COMPLETE))
        assert await async_store.queue_depth() == 0
        assert await async_store.hold_slots(["e", "f"], limit=3, hold_s=60) is None, (
            "a finished task frees room"
        )

    async def test_slots_expire(self, async_store):
        """A slot whose holder vanished (a killed API process) stops counting once it expires."""
        assert await async_store.hold_slots(["gone"], limit=1, hold_s=-1) is None  # already expired
        assert await async_store.hold_slots(["next"], limit=1, hold_s=60) is None

    async def test_a_batch_frees_its_slots_when_stored(self, async_store, database):

        records = [make_record(str(uuid.uuid4())) for _ in range(2)]
        batch = BatchRecord(
            batch_id="b1",
            tenant="acme",
            created_at=records[0].submitted_at,
            request=records[0].request,
            task_ids=[r.task_id for r in records],
        )
        assert await async_store.hold_slots(["s1", "s2"], limit=2, hold_s=60) is None
        await async_store.create_batch(batch, records, slots=["s1", "s2"])
        with psycopg.connect(database) as conn:
            assert conn.execute("SELECT count(*) FROM admission_slots").fetchone() == (0,)
        assert await async_store.queue_depth() == 2

    async def test_racing_submissions_never_overshoot(self, database, results_db):
        """Twenty submissions on six API processes' pools race for five slots: exactly five win."""
        stores = [
            AsyncTaskStore.from_urls(database, results_db, ttl_s=600, settings=TEST_SETTINGS)
            for _ in range(6)
        ]
        await stores[0].create(make_record("queued"))  # one unfinished task already counts
        outcomes = await asyncio.gather(
            *(stores[n % 6].hold_slots([f"s{n}"], limit=6, hold_s=60) for n in range(20))
        )
        assert sum(outcome is None for outcome in outcomes) == 5
        assert all(outcome == 6 for outcome in outcomes if outcome is not None)
        for store in stores:
            await store.close()
