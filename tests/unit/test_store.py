"""The task store against a real Redis."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from maie.errors import NotFoundError, StoreUnavailableError
from maie.schemas import AsrVersion, Results, ResultVersion, TaskStatus, Versions
from maie.store import AsyncTaskStore, TaskStore, results_url, task_key
from tests.fixtures.records import make_record


class TestResultsUrl:
    """The results database is named in the URL, whatever database the broker URL names."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("redis://h:6379/0", "redis://h:6379/1"),
            ("redis://:pw@h:6379", "redis://:pw@h:6379/1"),
            ("rediss://h/5", "rediss://h/1"),
            ("unix:///run/redis.sock?db=0", "unix:///run/redis.sock?db=1"),
        ],
    )
    def test_rewrites_database(self, url, expected):
        assert results_url(url, 1) == expected


class TestAsyncStore:
    """What the API does."""

    async def test_create_get_and_queue_depth(self, results_db):
        store = AsyncTaskStore.from_url(results_db, ttl_s=60)
        record = make_record()
        await store.create(record)
        assert (await store.get("t1")).tenant == "acme"
        assert await store.queue_depth() == 1
        assert 0 < await store.client.ttl(task_key("t1")) <= 60
        await store.discard("t1")
        assert await store.queue_depth() == 0
        with pytest.raises(NotFoundError):
            await store.get("t1")
        await store.close()

    async def test_queue_slots(self, results_db):
        """Slots count with unfinished tasks against the limit; a stored task frees its slot."""
        store = AsyncTaskStore.from_url(results_db, ttl_s=60)
        assert await store.hold_slots(["a", "b"], limit=3, hold_s=60) is None
        assert await store.hold_slots(["c", "d"], limit=3, hold_s=60) == 2, "no room for two more"
        await store.create(make_record(), slots=["a"])  # the task takes a's place
        assert await store.hold_slots(["c"], limit=3, hold_s=60) is None
        assert await store.hold_slots(["d"], limit=3, hold_s=60) == 3
        await store.free_slots(["b", "c"])
        assert await store.hold_slots(["d"], limit=3, hold_s=60) is None
        await store.close()

    async def test_queue_slots_expire(self, results_db):
        """A slot whose holder vanished (a killed API process) stops counting once it expires."""
        store = AsyncTaskStore.from_url(results_db, ttl_s=60)
        assert await store.hold_slots(["gone"], limit=1, hold_s=-1) is None  # already expired
        assert await store.hold_slots(["next"], limit=1, hold_s=60) is None
        await store.close()

    async def test_loaded_models_are_counted_over_live_workers(self, results_db):
        """Each heartbeat says which models its worker holds; a stale or retired worker counts for none."""
        workers = TaskStore.from_url(results_db, ttl_s=60)
        workers.heartbeat("w1", models=["whisper:a", "whisper:b"])
        workers.heartbeat("w2", models=["whisper:a"])
        workers.heartbeat("w3")  # a worker that does not report models
        store = AsyncTaskStore.from_url(results_db, ttl_s=60)

        assert await store.loaded_models() == {"whisper:a": 2, "whisper:b": 1}
        workers.heartbeat("w1", models=[])  # it unloaded everything
        assert await store.loaded_models() == {"whisper:a": 1}
        workers.client.zadd("maie:workers", {"w2": 1.0})  # its last beat is long gone
        assert await store.loaded_models() == {}
        workers.heartbeat("w2", models=["whisper:b"])
        workers.retire("w2")
        assert await store.loaded_models() == {}
        assert not workers.client.exists("maie:workers:w2:models")
        await store.close()
        workers.close()

    async def test_unreachable_redis(self):
        store = AsyncTaskStore.from_url("redis://127.0.0.1:1/1", ttl_s=60)
        assert await store.ping() is False
        with pytest.raises(StoreUnavailableError, match="cannot be reached"):
            await store.get("t1")
        await store.close()


class TestTaskStore:
    """What the worker does."""

    async def test_update_is_atomic_under_contention(self, results_db):
        """Concurrent read-modify-writes lose nothing (WATCH/MULTI retries)."""
        await AsyncTaskStore.from_url(results_db, ttl_s=60).create(make_record())
        store = TaskStore.from_url(results_db, ttl_s=60)

        def bump() -> None:
            for _ in range(25):
                store.update("t1", lambda r: setattr(r.stages[0], "attempts", r.stages[0].attempts + 1))

        threads = [threading.Thread(target=bump) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.get("t1").stages[0].attempts == 100

    async def test_terminal_status_leaves_the_queue(self, results_db):
        api = AsyncTaskStore.from_url(results_db, ttl_s=60)
        await api.create(make_record())
        store = TaskStore.from_url(results_db, ttl_s=60)
        store.update("t1", lambda r: setattr(r, "status", TaskStatus.COMPLETE))
        assert await api.queue_depth() == 0

    def test_results_are_immutable(self, results_db):
        store = TaskStore.from_url(results_db, ttl_s=60)
        version = ResultVersion(
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
        assert store.put_result("t1", version) is True
        changed = ResultVersion(
            **{**{f: getattr(version, f) for f in version.__struct_fields__}, "kind": "other"}
        )
        assert store.put_result("t1", changed) is False
        stored = store.get_result("t1", 1)
        assert stored is not None
        assert stored.kind == "pipeline"
        assert store.get_result("t1", 2) is None

    def test_artifacts_round_trip(self, results_db):
        store = TaskStore.from_url(results_db, ttl_s=60)
        assert store.get_artifact("t1", "transcribe", Results) is None
        store.put_artifact("t1", "transcribe", Results(raw_transcript="hi"))
        assert store.get_artifact("t1", "transcribe", Results) == Results(raw_transcript="hi")
