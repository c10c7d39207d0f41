"""Re-summarization jobs against a real PostgreSQL: once per job, a new version, the task untouched."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from maie.errors import PermanentError
from maie.pipeline.prompts import TemplateCatalog, default_templates_dir
from maie.schemas import (
    LlmVersion,
    Metrics,
    Results,
    ResultVersion,
    Segment,
    StageName,
    StageRecord,
    StageState,
    SummaryArtifact,
    TaskStatus,
    TemplateVersion,
    Versions,
)
from maie.worker.summary_jobs import SummaryJobs
from tests.fixtures.records import make_record, put_record

SEGMENTS = [Segment(id=1, start=0.0, end=2.0, text="we ship on friday")]


class CountingSummarizer:
    """Test double of the summarize stage: returns a fixed summary and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data) -> SummaryArtifact:
        self.calls += 1
        assert [s.text for s in data.segments] == ["we ship on friday"]
        return SummaryArtifact(
            summary={"title": f"call {self.calls}"},
            template=TemplateVersion(
                template_id=data.template.template_id, schema_sha256="s", prompt_sha256="p"
            ),
            version=LlmVersion(
                name="openai",
                model="m",
                checkpoint_hash=None,
                quantization=None,
                task="summary",
                chat_template=None,
                thinking=False,
            ),
            requests=1,
            processing_time_s=0.5,
        )


def stored_bytes(database: str, version: int) -> bytes:
    """Result version ``version`` of t1 as PostgreSQL keeps it."""
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT body::text FROM result_versions WHERE task_id = 't1' AND version = %s", (version,)
        ).fetchone()
    assert row is not None
    return str(row[0]).encode()


@pytest.fixture
def task(store, database):
    """A COMPLETE task with result version 1 and a queued job."""
    record = make_record()
    record.status = TaskStatus.COMPLETE
    record.result_version = 1
    record.stages.append(StageRecord(name=StageName.SUMMARIZE, job_id="j1", template_id="interview_notes_v1"))
    put_record(store, record)
    version_one = ResultVersion(
        version=1,
        created_at=datetime.now(UTC),
        kind="pipeline",
        results=Results(raw_transcript="we ship on friday", segments=SEGMENTS, language="en"),
        versions=Versions(pipeline_version="x"),
        metrics=Metrics(input_duration_seconds=10.0, processing_time_seconds=2.0, rtf=0.2),
    )
    store.put_result("t1", version_one)
    return stored_bytes(database, 1)


class TestSummaryJobs:
    def test_runs_once_and_adds_a_version(self, store, task, database):
        summarize = CountingSummarizer()
        jobs = SummaryJobs(store, TemplateCatalog(default_templates_dir()), summarize)
        with jobs.job("t1", "j1") as record:
            assert record is not None
            result = jobs.run(record, "j1")
        assert result.version == 2
        assert result.kind == "resummary"
        assert result.results.summary == {"title": "call 1"}
        assert result.results.raw_transcript == "we ship on friday"
        assert result.metrics is not None
        assert result.metrics.processing_time_seconds == 0.5
        assert result.metrics.rtf == 0.05
        record = store.get("t1")
        assert record.status == TaskStatus.COMPLETE
        assert record.result_version == 2
        job = record.job("j1")
        assert (job.status, job.result_version, job.attempts) == (StageState.DONE, 2, 1)
        assert stored_bytes(database, 1) == task, "version 1 is byte-for-byte unchanged"

    def test_a_redelivered_job_gets_the_same_version(self, store, task):
        """The worker died after storing the version but before marking the job done."""
        summarize = CountingSummarizer()
        jobs = SummaryJobs(store, TemplateCatalog(default_templates_dir()), summarize)
        record = store.get("t1")
        first = jobs.run(record, "j1")
        again = jobs.run(store.get("t1"), "j1")
        assert again == first
        assert summarize.calls == 1, "the stored summary is reused"
        assert store.get("t1").result_version == 2
        assert store.get_result("t1", 3) is None

    def test_a_done_job_is_not_run_again(self, store, task):
        jobs = SummaryJobs(store, TemplateCatalog(default_templates_dir()), CountingSummarizer())
        with jobs.job("t1", "j1") as record:
            jobs.run(record, "j1")
        with jobs.job("t1", "j1") as record:
            assert record is None

    def test_permanent_error_fails_the_job_only(self, store, task):
        def broken(data):
            raise PermanentError("the answer stayed invalid")

        jobs = SummaryJobs(store, TemplateCatalog(default_templates_dir()), broken)
        with pytest.raises(PermanentError), jobs.job("t1", "j1") as record:
            jobs.run(record, "j1")
        record = store.get("t1")
        assert record.status == TaskStatus.COMPLETE
        assert record.result_version == 1
        job = record.job("j1")
        assert job.status == StageState.FAILED
        assert job.error == "the answer stayed invalid"
