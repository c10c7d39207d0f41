"""Artifacts and result versions on a real PostgreSQL: immutable, numbered without gaps under races."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from maie.errors import NotFoundError
from maie.schemas import AsrVersion, Results, ResultVersion, StageName, StageRecord, TaskStatus, Versions
from maie.store import TaskStore
from tests.fixtures.postgres import TEST_SETTINGS
from tests.fixtures.records import make_record


def _version(kind, template_id=None):
    def build(n):
        return ResultVersion(
            version=n,
            created_at=datetime.now(UTC),
            kind=kind,
            template_id=template_id,
            results=Results(raw_transcript=f"text of {n}"),
            versions=Versions(pipeline_version="test"),
        )

    return build


def _pipeline_result() -> ResultVersion:
    return ResultVersion(
        version=1,
        created_at=datetime.now(UTC),
        kind="pipeline",
        results=Results(raw_transcript="one"),
        versions=Versions(
            pipeline_version="x",
            asr_backend=AsrVersion(
                name="whisper", model_variant="m", model_path="/m", checkpoint_hash="0" * 64,
                compute_type="int8", device="cpu",
            ),
        ),
    )  # fmt: skip


@pytest.fixture
async def task(async_store):
    record = make_record(str(uuid.uuid4()))
    await async_store.create(record)
    return record


class TestPutResult:
    """The pipeline's version 1."""

    def test_results_are_immutable(self, store, task):
        version = _pipeline_result()
        assert store.put_result(task.task_id, version) is True
        changed = ResultVersion(
            **{**{f: getattr(version, f) for f in version.__struct_fields__}, "kind": "other"}
        )
        assert store.put_result(task.task_id, changed) is False
        assert store.get_result(task.task_id, 1) == version
        assert store.get_result(task.task_id, 2) is None

    def test_a_result_needs_its_task(self, store):
        with pytest.raises(NotFoundError):
            store.put_result("gone", _pipeline_result())

    def test_nul_characters_are_stored_as_replacement(self, store, task):
        """PostgreSQL cannot hold NUL; a transcript with one is stored, not refused."""
        text = "a\x00b \\u0000 c"  # a real NUL, and the six characters backslash-u-0-0-0-0
        version = msgspec.structs.replace(_pipeline_result(), results=Results(raw_transcript=text))
        assert store.put_result(task.task_id, version)
        stored = store.get_result(task.task_id, 1)
        assert stored.results.raw_transcript == "a\ufffdb \\u0000 c"


class TestArtifacts:
    """Stage outputs, replaced by a rerun of their stage."""

    def test_artifacts_round_trip(self, store, task):
        assert store.get_artifact(task.task_id, "transcribe", Results) is None
        store.put_artifact(task.task_id, "transcribe", Results(raw_transcript="hi"))
        store.put_artifact(task.task_id, "transcribe", Results(raw_transcript="again"))
        assert store.get_artifact(task.task_id, "transcribe", Results) == Results(raw_transcript="again")

    def test_an_artifact_of_a_deleted_task_is_refused(self, store):
        """A stage finishing after its task was deleted stores nothing."""
        with pytest.raises(NotFoundError, match="task gone"):
            store.put_artifact("gone", "transcribe", Results(raw_transcript="hi"))


class TestAddResult:
    """add_result is where a re-summarization stores its version."""

    def test_adds_next_version_and_keeps_earlier_ones(self, store, task):
        first = store.add_result(task.task_id, _version("pipeline"))
        second = store.add_result(task.task_id, _version("resummary", "meeting_notes_v1"))
        assert (first.version, second.version) == (1, 2)
        assert store.get_result(task.task_id, 1) == first
        assert store.get(task.task_id).result_version == 2
        assert store.get_result(task.task_id, 2).kind == "resummary"

    def test_follows_a_pipeline_version(self, store, task):
        store.put_result(task.task_id, _pipeline_result())
        store.update(task.task_id, lambda r: setattr(r, "result_version", 1))
        assert store.add_result(task.task_id, _version("resummary")).version == 2

    def test_racing_writers_get_consecutive_versions(self, database, task, results_db):
        """Six threads on two pools (separate connections) race: versions 1..6, no gap, no repeat."""
        stores = [TaskStore.from_urls(database, results_db, settings=TEST_SETTINGS) for _ in range(2)]
        barrier = threading.Barrier(6)
        made: list[int] = []

        def add(store):
            barrier.wait()
            made.append(store.add_result(task.task_id, _version("resummary")).version)

        threads = [threading.Thread(target=add, args=(stores[i % 2],)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(made) == [1, 2, 3, 4, 5, 6]
        assert stores[0].get(task.task_id).result_version == 6
        assert [stores[0].get_result(task.task_id, n).version for n in range(1, 7)] == [1, 2, 3, 4, 5, 6]
        for store in stores:
            store.close()

    def test_a_redelivered_job_gets_its_version_back(self, store, task):
        store.update(
            task.task_id, lambda r: r.stages.append(StageRecord(name=StageName.SUMMARIZE, job_id="j1"))
        )
        first = store.add_result(task.task_id, _version("resummary"), job_id="j1")
        again = store.add_result(task.task_id, _version("resummary"), job_id="j1")
        assert again == first
        record = store.get(task.task_id)
        assert (record.result_version, record.job("j1").result_version) == (1, 1)

    def test_unknown_job_or_task(self, store, task):
        with pytest.raises(NotFoundError, match="has no job"):
            store.add_result(task.task_id, _version("resummary"), job_id="nope")
        with pytest.raises(NotFoundError):
            store.add_result("gone", _version("resummary"))

    def test_status_is_untouched(self, store, task):
        store.update(task.task_id, lambda r: setattr(r, "status", TaskStatus.COMPLETE))
        store.add_result(task.task_id, _version("resummary"))
        assert store.get(task.task_id).status == TaskStatus.COMPLETE


class TestReading:
    """What the API reads of versions."""

    async def test_listing_reads_the_headers(self, store, async_store, task):
        store.add_result(task.task_id, _version("pipeline"))
        store.add_result(task.task_id, _version("resummary", "meeting_notes_v1"))
        listed = await async_store.list_results(task.task_id, 2)
        assert [(v.version, v.kind, v.template_id) for v in listed] == [
            (1, "pipeline", None),
            (2, "resummary", "meeting_notes_v1"),
        ]
        assert await async_store.list_results(task.task_id, 0) == []

    async def test_get_results_in_order(self, store, async_store, task):
        store.add_result(task.task_id, _version("pipeline"))
        found = await async_store.get_results([(task.task_id, 1), (task.task_id, 9), ("gone", 1)])
        assert [r.version if r else None for r in found] == [1, None, None]
