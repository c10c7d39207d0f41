"""The enhance and summarize stages of the worker runtime, on a real PostgreSQL and the LLM test server."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from jsonschema import Draft202012Validator

from maie.config import Settings
from maie.errors import LlmOutputError
from maie.pipeline.result_builder import first_version
from maie.schemas import (
    AsrArtifact,
    AsrVersion,
    AudioInfo,
    Feature,
    PreprocessArtifact,
    Segment,
    StageName,
    StageRecord,
    StageState,
    TaskRecord,
    TaskRequest,
    TaskStatus,
)
from maie.worker.runtime import WorkerRuntime
from tests.fixtures.llm_answers import enhance_text
from tests.fixtures.llm_server import MODEL, Fault
from tests.fixtures.records import put_record

TEXTS = ["we agreed to ship on friday", "anna writes the release notes", "any questions", "no"]


@pytest.fixture
def runtime(store, llm_server, tmp_path):
    settings = Settings.from_env(
        {
            "MAIE_LLM_BACKEND": "openai",
            "MAIE_LLM_BASE_URL": llm_server.url,
            "MAIE_LLM_SUMMARY_MODEL": MODEL,
            "MAIE_LLM_RETRY_BACKOFF_S": "0",
            "MAIE_DATA_DIR": str(tmp_path),
            "MAIE_MODEL_RESIDENCY": "resident",
        },
        env_file=None,
    )
    runtime = WorkerRuntime(settings, store)
    yield runtime
    runtime.models.clear()


def put_task(store, features, *, native_punctuation=False, task_id="t1") -> TaskRecord:
    stages = [StageRecord(name=StageName.PREPROCESS), StageRecord(name=StageName.TRANSCRIBE)]
    if {Feature.CLEAN_TRANSCRIPT, Feature.ENHANCEMENT_METRICS} & set(features):
        stages.append(StageRecord(name=StageName.ENHANCE))
    if Feature.SUMMARY in features:
        stages.append(StageRecord(name=StageName.SUMMARIZE))
    record = TaskRecord(
        task_id=task_id,
        tenant="acme",
        submitted_at=datetime.now(UTC),
        request=TaskRequest(
            features=features,
            asr_backend="whisper",
            template_id="meeting_notes_v1" if Feature.SUMMARY in features else None,
        ),
        audio_path="/nowhere/raw.wav",
        stages=stages,
    )
    put_record(store, record)
    segments = [Segment(id=i, start=2.0 * i, end=2.0 * i + 2, text=t) for i, t in enumerate(TEXTS, start=1)]
    variant = "erax-wow-turbo" if native_punctuation else "small"
    asr = AsrArtifact(
        text=" ".join(TEXTS),
        segments=segments,
        language="en",
        duration_s=8.0,
        processing_time_s=1.0,
        version=AsrVersion(
            name="whisper",
            model_variant=variant,
            model_path="/m",
            checkpoint_hash="0" * 64,
            compute_type="int8",
            device="cpu",
            native_punctuation=native_punctuation,
        ),
    )
    audio = PreprocessArtifact(
        source=AudioInfo(container="wav", codec="pcm", duration_s=8.0, channels=1, sample_rate=16000),
        wav_path="/nowhere/preprocessed.wav",
        duration_s=8.0,
    )
    store.put_artifact(task_id, StageName.PREPROCESS, audio)
    store.put_artifact(task_id, StageName.TRANSCRIBE, asr)
    return record


def run_stage(runtime, task_id, name):
    with runtime.tracker.stage(task_id, name) as record:
        assert record is not None
        getattr(runtime.stages, name.value)(record)


class TestStages:
    def test_enhance_summarize_finalize(self, runtime, store, llm_server):
        put_task(store, [Feature.CLEAN_TRANSCRIPT, Feature.SUMMARY, Feature.ENHANCEMENT_METRICS])
        run_stage(runtime, "t1", StageName.ENHANCE)
        assert store.get("t1").status == TaskStatus.PROCESSING_LLM
        run_stage(runtime, "t1", StageName.SUMMARIZE)
        runtime.stages.finalize(store.get("t1"))

        record = store.get("t1")
        assert record.status == TaskStatus.COMPLETE
        assert [s.status for s in record.stages[2:]] == [StageState.DONE, StageState.DONE]
        result = store.get_result("t1", 1)
        assert result.results.clean_transcript == " ".join(enhance_text(t) for t in TEXTS)
        assert result.results.raw_transcript is None, "not asked for"
        assert result.results.enhancement_metrics.segments_changed == 4
        assert result.metrics.edit_rate_cleaning == result.results.enhancement_metrics.edit_rate > 0
        schema = runtime.templates.get("meeting_notes_v1").schema
        Draft202012Validator(schema).validate(result.results.summary)
        assert result.versions.enhancement_llm.task == "enhancement"
        assert result.versions.summarization_llm.model == MODEL
        assert result.versions.template.template_id == "meeting_notes_v1"
        # The summary was written from the cleaned transcript.
        summary_prompt = llm_server.requests[-1]["messages"][0]["content"]
        assert "[1] 2.0-4.0 We agreed to ship on friday." in summary_prompt

    def test_artifacts_are_reused_on_redelivery(self, runtime, store, llm_server):
        put_task(store, [Feature.SUMMARY])
        run_stage(runtime, "t1", StageName.SUMMARIZE)
        sent = len(llm_server.requests)
        run_stage(runtime, "t1", StageName.SUMMARIZE)
        assert len(llm_server.requests) == sent, "a redelivered message does not ask the LLM again"
        assert store.get("t1").stage(StageName.SUMMARIZE).attempts == 2

    def test_native_punctuation_skips_enhancement(self, runtime, store, llm_server):
        put_task(store, [Feature.CLEAN_TRANSCRIPT, Feature.ENHANCEMENT_METRICS], native_punctuation=True)
        run_stage(runtime, "t1", StageName.ENHANCE)
        runtime.stages.finalize(store.get("t1"))
        assert llm_server.requests == []
        assert store.get("t1").stage(StageName.ENHANCE).status == StageState.SKIPPED
        result = store.get_result("t1", 1)
        assert result.results.clean_transcript == " ".join(TEXTS)
        assert result.metrics.edit_rate_cleaning == 0.0
        assert result.results.enhancement_metrics.skipped
        assert "erax-wow-turbo" in result.results.enhancement_metrics.reason
        assert result.versions.enhancement_llm is None

    def test_resident_backend_is_shared_by_both_stages(self, runtime, store):
        put_task(store, [Feature.CLEAN_TRANSCRIPT, Feature.SUMMARY])
        run_stage(runtime, "t1", StageName.ENHANCE)
        run_stage(runtime, "t1", StageName.SUMMARIZE)
        assert len(runtime.models._models) == 1, "same server and model: one loaded backend"


@pytest.fixture
def vllm_runtime(store, fake_vllm, tmp_path):
    """A runtime whose LLM is the vllm backend on the vLLM test double."""

    def make(residency: str) -> WorkerRuntime:
        folder = tmp_path / "tiny-qwen"
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_text("{}")
        settings = Settings.from_env(
            {
                "MAIE_LLM_BACKEND": "vllm",
                "MAIE_LLM_SUMMARY_MODEL": str(folder),
                "MAIE_DATA_DIR": str(tmp_path),
                "MAIE_MODEL_RESIDENCY": residency,
            },
            env_file=None,
        )
        return WorkerRuntime(settings, store)

    return make


class TestPartialResults:
    """A task that fails after its transcription keeps its transcript as version 1 (``partial``)."""

    def test_failed_summary_keeps_transcript_and_clean_text(self, runtime, store, llm_server):
        put_task(store, [Feature.CLEAN_TRANSCRIPT, Feature.SUMMARY])
        run_stage(runtime, "t1", StageName.ENHANCE)
        llm_server.inject(Fault.SCHEMA_VIOLATION, times=None, schema="meeting_notes_v1")
        with pytest.raises(LlmOutputError):
            run_stage(runtime, "t1", StageName.SUMMARIZE)
        record = store.get("t1")
        assert (record.status, record.failed_stage, record.error_code) == (
            TaskStatus.FAILED,
            "summarize",
            "llm_output_invalid",
        )
        assert record.result_version == 1
        assert record.has_result
        result = store.get_result("t1", 1)
        assert result.kind == "partial"
        assert result.results.raw_transcript == " ".join(TEXTS), "kept though only asked for clean text"
        assert result.results.clean_transcript == " ".join(enhance_text(t) for t in TEXTS)
        assert [s.text for s in result.results.segments] == TEXTS
        assert result.results.language == "en"
        assert result.results.summary is None
        assert result.versions.asr_backend.name == "whisper"
        assert result.versions.enhancement_llm is not None
        assert result.metrics.input_duration_seconds == 8.0

    def test_failed_enhancement_after_retries_keeps_the_raw_transcript(self, runtime, store):
        """The path of a message whose retries ran out: the TaskFailure middleware calls fail()."""
        put_task(store, [Feature.CLEAN_TRANSCRIPT])
        runtime.tracker.fail("t1", StageName.ENHANCE, RuntimeError("the LLM server kept failing"))
        record = store.get("t1")
        assert (record.status, record.result_version) == (TaskStatus.FAILED, 1)
        result = store.get_result("t1", 1)
        assert (result.kind, result.results.raw_transcript) == ("partial", " ".join(TEXTS))
        assert result.results.clean_transcript is None

    def test_no_transcript_no_result(self, runtime, store, database):
        put_task(store, [Feature.CLEAN_TRANSCRIPT])
        with psycopg.connect(database) as conn:
            conn.execute(
                "DELETE FROM artifacts WHERE task_id = 't1' AND stage = %s", (StageName.TRANSCRIBE.value,)
            )
        assert store.get_artifact("t1", StageName.TRANSCRIBE, AsrArtifact) is None
        runtime.tracker.fail("t1", StageName.TRANSCRIBE, RuntimeError("ASR broke"))
        record = store.get("t1")
        assert (record.status, record.result_version, record.has_result) == (TaskStatus.FAILED, None, False)
        assert store.get_result("t1", 1) is None

    def test_a_stored_version_is_kept(self, runtime, store):
        """A finalize that stored version 1 and then failed: that version stays the task's."""
        put_task(store, [Feature.RAW_TRANSCRIPT])
        record = store.get("t1")
        asr = store.get_artifact("t1", StageName.TRANSCRIBE, AsrArtifact)
        store.put_result(
            "t1",
            first_version(
                kind="pipeline", asr=asr, duration_s=8.0, processing_s=1.0, features=record.request.features
            ),
        )
        runtime.tracker.fail("t1", None, RuntimeError("the store went away while completing"))
        assert store.get("t1").result_version == 1
        assert store.get_result("t1", 1).kind == "pipeline"


class TestResidency:
    """Sequential workers unload the LLM after each stage; resident ones keep it, asleep when idle."""

    def test_sequential_unloads_after_each_stage(self, vllm_runtime, store, fake_vllm):
        runtime = vllm_runtime("sequential")
        put_task(store, [Feature.CLEAN_TRANSCRIPT, Feature.SUMMARY])
        run_stage(runtime, "t1", StageName.ENHANCE)
        [first] = fake_vllm.LLM.instances
        assert first.llm_engine.engine_core.shut_down
        assert fake_vllm.cleanups == [1]
        run_stage(runtime, "t1", StageName.SUMMARIZE)
        assert len(fake_vllm.LLM.instances) == 2, "loaded again for the next stage"
        assert fake_vllm.cleanups == [1, 1]

    def test_resident_sleeps_only_when_no_llm_stage_follows(self, vllm_runtime, store, fake_vllm):
        runtime = vllm_runtime("resident")
        put_task(store, [Feature.CLEAN_TRANSCRIPT, Feature.SUMMARY])
        run_stage(runtime, "t1", StageName.ENHANCE)
        [llm] = fake_vllm.LLM.instances
        assert llm.kwargs["enable_sleep_mode"] is True
        assert not llm.sleeping, "the summary comes next on the same engine"
        run_stage(runtime, "t1", StageName.SUMMARIZE)
        assert llm.sleeping, "idle between tasks: asleep, GPU free for ASR"
        assert len(fake_vllm.LLM.instances) == 1
        put_task(store, [Feature.SUMMARY], task_id="t2")
        run_stage(runtime, "t2", StageName.SUMMARIZE)
        assert len(fake_vllm.LLM.instances) == 1, "woken, not reloaded"
        assert llm.sleep_calls == [1, 1]
        runtime.models.clear()
        assert llm.llm_engine.engine_core.shut_down
