"""Cluster-wide series: recorded by the worker in Redis, read at scrape time (with PostgreSQL's depth)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from maie.errors import AudioTooLongError, StoreUnavailableError
from maie.metrics import RTF, STAGE_SECONDS, ClusterCollector, ClusterSnapshot, MetricsRecorder, read_cluster
from maie.metrics.series import HistogramSeries
from maie.schemas import StageName
from maie.store import TaskStore, results_url
from maie.worker.tracker import StageTracker
from tests.fixtures.records import make_record
from tests.fixtures.records import put_record as put
from tests.fixtures.store import STORE_DB


def samples(snapshot: ClusterSnapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(snapshot))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def snapshot_of(store: TaskStore, redis_server, queue_depth=None) -> ClusterSnapshot:
    results = aioredis.Redis.from_url(results_url(redis_server.url, STORE_DB))
    broker = aioredis.Redis.from_url(redis_server.url)

    async def no_tasks() -> int:
        return 0

    try:
        return await read_cluster(results, broker, queue_depth=queue_depth or no_tasks, worker_window_s=60)
    finally:
        await results.aclose()
        await broker.aclose()


class TestBuckets:
    """Which bucket a value lands in."""

    @pytest.mark.parametrize(
        ("value", "index"), [(0.0, 0), (1.0, 0), (1.5, 1), (2.0, 1), (4.0, 2), (4.1, 3), (1e9, 3)]
    )
    def test_bucket_index(self, value, index):
        assert HistogramSeries("h", "doc", None, (1.0, 2.0, 4.0)).bucket_index(value) == index


class TestTrackerRecordsOnce:
    """Outcomes are counted by the call that makes the transition, never by a redelivery."""

    async def test_complete_twice_counts_once(self, store, redis_server):
        put(store, make_record())
        tracker = StageTracker(store, keep_audio=True, metrics=MetricsRecorder(store.client))
        with tracker.stage("t1", StageName.PREPROCESS):
            pass
        tracker.complete("t1", 1, rtf=0.25)
        tracker.complete("t1", 1, rtf=0.25)  # a duplicate finalize
        tracker.fail("t1", StageName.TRANSCRIBE, AudioTooLongError("late"))  # a late failure
        got = samples(await snapshot_of(store, redis_server))
        assert got[("maie_tasks_total", (("status", "complete"),))] == 1
        assert got[("maie_tasks_total", (("status", "failed"),))] == 0
        assert got[("maie_rtf_count", ())] == 1
        assert got[("maie_rtf_sum", ())] == 0.25
        assert got[("maie_rtf_bucket", (("le", "0.3"),))] == 1
        assert got[("maie_rtf_bucket", (("le", "0.2"),))] == 0
        assert got[("maie_stage_seconds_count", (("stage", "preprocess"),))] == 1

    async def test_failure_counted_by_stage_and_code(self, store, redis_server):
        put(store, make_record())
        tracker = StageTracker(store, keep_audio=True, metrics=MetricsRecorder(store.client))
        tracker.fail("t1", StageName.PREPROCESS, AudioTooLongError("too long"))
        tracker.fail("t1", StageName.PREPROCESS, AudioTooLongError("too long"))
        got = samples(await snapshot_of(store, redis_server))
        assert got[("maie_tasks_total", (("status", "failed"),))] == 1
        key = ("maie_task_failures_total", (("error_code", "audio_too_long"), ("stage", "preprocess")))
        assert got[key] == 1


class TestCollector:
    """What a scrape reports."""

    async def test_histogram_is_cumulative_per_label(self, store, redis_server):
        recorder = MetricsRecorder(store.client)
        for value in (0.01, 0.3, 0.3, 9999.0):
            recorder.observe(STAGE_SECONDS, value, "transcribe")
        recorder.observe(STAGE_SECONDS, 2.0, "preprocess")
        got = samples(await snapshot_of(store, redis_server))
        transcribe = sorted(
            (float(dict(labels)["le"]), count)
            for (name, labels), count in got.items()
            if name == "maie_stage_seconds_bucket" and dict(labels)["stage"] == "transcribe"
        )
        counts = [count for _, count in transcribe]
        assert counts == sorted(counts)
        assert dict(transcribe)[0.05] == 1
        assert dict(transcribe)[0.5] == 3
        assert dict(transcribe)[7200.0] == 3
        assert dict(transcribe)[float("inf")] == 4
        assert got[("maie_stage_seconds_count", (("stage", "preprocess"),))] == 1

    async def test_negative_values_count_as_zero(self, store, redis_server):
        """Clock skew between hosts can make a queue wait negative; it is clamped, not dropped."""
        MetricsRecorder(store.client).observe(RTF, -1.0)
        got = samples(await snapshot_of(store, redis_server))
        assert got[("maie_rtf_sum", ())] == 0
        assert got[("maie_rtf_count", ())] == 1

    def test_unreachable_redis_reports_only_that(self):
        got = samples(ClusterSnapshot(up=False))
        assert got == {("maie_cluster_up", ()): 0}

    def test_recorder_drops_what_it_cannot_write(self):
        import redis

        recorder = MetricsRecorder(redis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5))
        with capture_logs() as logs:
            recorder.observe(RTF, 1.0)  # no exception: a metric is never worth a task
            recorder.task_finished("complete")
        assert [(e["event"], e["log_level"], e["series"]) for e in logs] == [
            ("metrics.dropped", "warning", "maie_rtf"),
            ("metrics.dropped", "warning", "maie_tasks_total"),
        ]


class TestQueueDepth:
    """maie_queue_depth counts the unfinished tasks of the system of record."""

    async def test_from_the_database(self, store, async_store, redis_server):
        await async_store.create(make_record())
        got = samples(await snapshot_of(store, redis_server, queue_depth=async_store.queue_depth))
        assert got[("maie_queue_depth", ())] == 1

    async def test_left_out_while_the_database_is_away(self, store, redis_server):
        async def away() -> int:
            raise StoreUnavailableError("the task store (PostgreSQL) cannot be reached")

        got = samples(await snapshot_of(store, redis_server, queue_depth=away))
        assert got[("maie_cluster_up", ())] == 1
        assert ("maie_queue_depth", ()) not in got, "a gap, not a drop to zero"
