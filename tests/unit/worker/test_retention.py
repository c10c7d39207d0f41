"""The worker's retention schedule against a real PostgreSQL: old tasks and their audio go, new ones stay."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from maie.errors import NotFoundError
from maie.worker.retention import RetentionPurge
from tests.fixtures.records import make_record


def _task(async_store, tmp_path, *, age: timedelta):
    """Store a task submitted ``age`` ago, with an audio folder; returns (record, folder)."""

    async def make():
        record = make_record(str(uuid.uuid4()))
        record.submitted_at = datetime.now(UTC) - age
        folder = tmp_path / "audio" / record.task_id
        folder.mkdir(parents=True)
        (folder / "raw.wav").write_bytes(b"audio")
        record.audio_path = str(folder / "raw.wav")
        await async_store.create(record)
        return record, folder

    return make()


class TestRetentionPurge:
    async def test_purges_old_tasks_with_their_audio_in_rounds(self, async_store, store, tmp_path):
        old = [await _task(async_store, tmp_path, age=timedelta(days=40)) for _ in range(5)]
        new, new_folder = await _task(async_store, tmp_path, age=timedelta(days=2))
        purge = RetentionPurge(store, tmp_path, days=30, interval_s=3600, batch=2)

        assert purge.run_once() == 5
        for record, folder in old:
            with pytest.raises(NotFoundError):
                store.get(record.task_id)
            assert not folder.exists()
        assert store.get(new.task_id).task_id == new.task_id
        assert new_folder.exists()
        assert purge.run_once() == 0

    async def test_runs_on_its_schedule_until_the_worker_stops(self, async_store, store, tmp_path):
        record, folder = await _task(async_store, tmp_path, age=timedelta(days=3))
        purge = RetentionPurge(store, tmp_path, days=1, interval_s=0.05)
        purge.after_worker_boot(None, None)  # type: ignore[arg-type]  # the hook uses neither
        try:
            deadline = time.monotonic() + 30
            while folder.exists():
                assert time.monotonic() < deadline, "the schedule never purged the old task"
                await asyncio.sleep(0.05)
        finally:
            purge.before_worker_shutdown(None, None)  # type: ignore[arg-type]
        with pytest.raises(NotFoundError):
            store.get(record.task_id)
        assert purge._thread is not None
        assert not purge._thread.is_alive()
