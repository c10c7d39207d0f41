"""Result versions from stage artifacts: the one builder finalize, re-summaries and maie transcribe use."""

from __future__ import annotations

import msgspec
import pytest

from maie import __version__
from maie.pipeline.result_builder import first_version, next_version
from maie.schemas import (
    AsrArtifact,
    AsrVersion,
    EnhanceArtifact,
    EnhancementMetrics,
    Feature,
    LlmVersion,
    Segment,
    SummaryArtifact,
    TemplateVersion,
)

ASR = AsrArtifact(
    text="we ship on friday",
    segments=[Segment(id=0, start=0.0, end=2.0, text="we ship on friday")],
    language="en",
    duration_s=8.0,
    vad_coverage=0.5,
    confidence_avg=0.9,
    processing_time_s=1.0,
    version=AsrVersion(
        name="whisper",
        model_variant="tiny",
        model_path="/m",
        checkpoint_hash="h",
        compute_type="int8",
        device="cpu",
    ),
)
LLM = LlmVersion(
    name="openai",
    model="m",
    checkpoint_hash=None,
    quantization=None,
    task="summary",
    chat_template=None,
    thinking=False,
)
ENHANCED = EnhanceArtifact(
    text="We ship on Friday.",
    segments=ASR.segments,
    metrics=EnhancementMetrics(edit_rate=0.25, word_edit_rate=0.5, segments=1),
    version=LLM,
)


def _summary(text: str, seconds: float) -> SummaryArtifact:
    return SummaryArtifact(
        summary={"title": text},
        template=TemplateVersion(template_id="notes", schema_sha256="s", prompt_sha256="p"),
        version=LLM,
        requests=1,
        processing_time_s=seconds,
    )


class TestFirstVersion:
    def test_results_hold_only_the_features_asked_for(self):
        result = first_version(
            kind="pipeline",
            asr=ASR,
            duration_s=8.0,
            processing_s=2.0,
            features=[Feature.SUMMARY],
            template_id="notes",
            enhanced=ENHANCED,
            summary=_summary("plan", 1.0),
        )
        assert result.version == 1
        assert result.results.raw_transcript is None
        assert result.results.clean_transcript is None
        assert result.results.summary == {"title": "plan"}
        assert result.results.segments == ASR.segments
        assert result.versions.enhancement_llm == LLM, "the stage ran, so its model is recorded"
        assert result.metrics is not None
        assert result.metrics.edit_rate_cleaning == 0.25
        assert result.template_id == "notes"

    def test_metrics_and_versions(self):
        result = first_version(
            kind="offline", asr=ASR, duration_s=8.0, processing_s=2.0, features=[Feature.RAW_TRANSCRIPT]
        )
        assert result.kind == "offline"
        assert result.results.raw_transcript == "we ship on friday"
        assert result.versions.pipeline_version == __version__
        assert result.versions.asr_backend == ASR.version
        assert result.versions.summarization_llm is None
        assert result.metrics is not None
        assert (result.metrics.rtf, result.metrics.vad_coverage, result.metrics.asr_confidence_avg) == (
            0.25,
            0.5,
            0.9,
        )

    def test_empty_audio_has_rtf_zero(self):
        result = first_version(kind="pipeline", asr=ASR, duration_s=0.0, processing_s=2.0, features=[])
        assert result.metrics is not None
        assert result.metrics.rtf == 0.0


class TestNextVersion:
    def test_a_resummary_keeps_the_transcript_and_counts_its_own_time(self):
        base = first_version(
            kind="pipeline",
            asr=ASR,
            duration_s=8.0,
            processing_s=4.0,
            features=[Feature.RAW_TRANSCRIPT, Feature.SUMMARY],
            summary=_summary("old", 3.0),
            template_id="notes",
        )
        again = next_version(base, 3, summary=_summary("new", 2.0), template_id="other")
        assert (again.version, again.kind, again.template_id) == (3, "resummary", "other")
        assert again.results.raw_transcript == base.results.raw_transcript
        assert again.results.summary == {"title": "new"}
        assert again.versions.asr_backend == base.versions.asr_backend
        assert again.metrics is not None
        assert (again.metrics.processing_time_seconds, again.metrics.rtf) == (2.0, 0.25)
        assert again.metrics.input_duration_seconds == 8.0

    def test_a_base_without_metrics_is_refused(self):
        base = first_version(kind="pipeline", asr=ASR, duration_s=8.0, processing_s=1.0, features=[])
        with pytest.raises(ValueError, match="no metrics"):
            next_version(
                msgspec.structs.replace(base, metrics=None), 2, summary=_summary("x", 1.0), template_id=None
            )
