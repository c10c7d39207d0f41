"""Which tasks take a re-summarization job, in both stores (Redis and PostgreSQL)."""

from __future__ import annotations

import pytest

from maie.errors import ConflictError
from maie.schemas import StageName, StageRecord, TaskStatus
from tests.fixtures.records import make_record


@pytest.fixture
def any_async_store(async_store):
    """The API's store on an empty database (one kind since PostgreSQL holds the records)."""
    return async_store


def _job() -> StageRecord:
    return StageRecord(name=StageName.SUMMARIZE, job_id="j1", template_id="meeting_notes_v1")


def _fail(record, *, result_version):
    record.status = TaskStatus.FAILED
    record.failed_stage = "summarize" if result_version else "preprocess"
    record.result_version = result_version


class TestAddJob:
    async def test_a_task_failed_after_transcription_takes_a_job(self, any_async_store):
        await any_async_store.create(make_record())
        await any_async_store.update("t1", lambda r: _fail(r, result_version=1))
        record = await any_async_store.add_job("t1", _job(), tenant="acme")
        assert record.job("j1").template_id == "meeting_notes_v1"
        assert record.status == TaskStatus.FAILED

    async def test_a_task_failed_before_its_transcript_is_refused(self, any_async_store):
        await any_async_store.create(make_record())
        await any_async_store.update("t1", lambda r: _fail(r, result_version=None))
        with pytest.raises(ConflictError, match=r"failed before its transcript.*\(preprocess\).*submit"):
            await any_async_store.add_job("t1", _job(), tenant="acme")
        with pytest.raises(KeyError):
            (await any_async_store.get("t1")).job("j1")

    async def test_an_unfinished_task_is_refused(self, any_async_store):
        await any_async_store.create(make_record())
        with pytest.raises(ConflictError, match="has no transcript yet"):
            await any_async_store.add_job("t1", _job(), tenant="acme")
