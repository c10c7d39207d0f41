"""Result versions from stage artifacts: the one place a :class:`~maie.schemas.ResultVersion` is built.

The worker's finalize stores version 1 (``kind: "pipeline"``), ``maie transcribe`` returns one
(``kind: "offline"``), a task that fails after its transcription keeps what it has as version 1
(``kind: "partial"``: the raw transcript always, plus whatever later stage finished), a
re-summarization job adds version n + 1 (``kind: "resummary"``) from the latest version and its new
summary, and a rename of speakers adds one (``kind: "speakers"``) in which names stand for labels.
All of them fill ``versions`` and ``metrics`` here, so a field added to the contract is filled the
same way wherever a result comes from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from maie import __version__
from maie.pipeline.diarization.names import (
    names_of,
    rename_in_summary,
    rename_segments,
    rename_turns,
)
from maie.pipeline.diarization.speakers import assign_speakers
from maie.schemas import Feature, Metrics, Results, ResultVersion, Versions

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from maie.schemas import AsrArtifact, DiarizationArtifact, EnhanceArtifact, SummaryArtifact

__all__ = ["first_version", "next_version", "partial_version", "renamed_version"]


def _rtf(processing_s: float, duration_s: float) -> float:
    """Seconds of processing per second of audio (0 for empty audio)."""
    return round(processing_s / duration_s, 4) if duration_s else 0.0


def first_version(
    *,
    kind: str,
    asr: AsrArtifact,
    duration_s: float,
    processing_s: float,
    features: Collection[Feature],
    template_id: str | None = None,
    enhanced: EnhanceArtifact | None = None,
    summary: SummaryArtifact | None = None,
    diarization: DiarizationArtifact | None = None,
) -> ResultVersion:
    """Result version 1 of a run, from its stage artifacts.

    Args:
        kind: ``"pipeline"`` for a task, ``"offline"`` for ``maie transcribe``.
        asr: The transcript.
        duration_s: Length of the audio.
        processing_s: Seconds the run took (the task's stage durations, or the wall time offline).
        features: What the request asked for: the results hold only these (segments always).
        template_id: The summary template the request named.
        enhanced: The enhancement stage's artifact, when it ran.
        summary: The summary stage's artifact, when it ran.
        diarization: The diarization stage's artifact, when it ran: its speakers are assigned to
            the ASR segments and words here (the LLM stages got the same assignment).
    """
    segments, speakers = asr.segments, None
    if diarization is not None:
        assignment = assign_speakers(asr.segments, diarization.turns)
        segments, speakers = assignment.segments, assignment.speakers
    return ResultVersion(
        version=1,
        created_at=datetime.now(UTC),
        kind=kind,
        template_id=template_id,
        results=Results(
            raw_transcript=asr.text if Feature.RAW_TRANSCRIPT in features else None,
            clean_transcript=enhanced.text if enhanced and Feature.CLEAN_TRANSCRIPT in features else None,
            summary=summary.summary if summary and Feature.SUMMARY in features else None,
            enhancement_metrics=(
                enhanced.metrics if enhanced and Feature.ENHANCEMENT_METRICS in features else None
            ),
            language=asr.language,
            segments=segments,
            speakers=speakers,
            speaker_turns=diarization.turns if diarization else None,
            warnings=(diarization.warnings or None) if diarization else None,
        ),
        versions=Versions(
            pipeline_version=__version__,
            asr_backend=asr.version,
            enhancement_llm=enhanced.version if enhanced else None,
            summarization_llm=summary.version if summary else None,
            template=summary.template if summary else None,
            diarization=diarization.version if diarization else None,
        ),
        metrics=Metrics(
            input_duration_seconds=round(duration_s, 3),
            processing_time_seconds=round(processing_s, 3),
            rtf=_rtf(processing_s, duration_s),
            vad_coverage=asr.vad_coverage,
            asr_confidence_avg=asr.confidence_avg,
            edit_rate_cleaning=enhanced.metrics.edit_rate if enhanced else None,
            num_speakers=diarization.num_speakers if diarization else None,
            diarization_rtf=_rtf(diarization.processing_time_s, duration_s) if diarization else None,
        ),
    )


def partial_version(
    *,
    asr: AsrArtifact,
    duration_s: float,
    processing_s: float,
    features: Collection[Feature],
    template_id: str | None = None,
    enhanced: EnhanceArtifact | None = None,
    summary: SummaryArtifact | None = None,
    diarization: DiarizationArtifact | None = None,
) -> ResultVersion:
    """Result version 1 of a task that failed after its transcription (``kind: "partial"``).

    As :func:`first_version` with what finished, and the raw transcript whatever the features:
    the clean transcript or summary asked for in its place is what failed.
    """
    return first_version(
        kind="partial",
        asr=asr,
        duration_s=duration_s,
        processing_s=processing_s,
        features=[*features, Feature.RAW_TRANSCRIPT],
        template_id=template_id,
        enhanced=enhanced,
        summary=summary,
        diarization=diarization,
    )


def next_version(
    base: ResultVersion, version: int, *, summary: SummaryArtifact, template_id: str | None
) -> ResultVersion:
    """Version ``version`` of a task: ``base`` (its latest version) with a new summary (a re-summarization).

    The transcript, language, speakers and ASR versions are ``base``'s; the summary, its model and
    template are new, and the metrics count the summary's time only. Speakers renamed in
    ``base`` are named in the new summary too (the model was given their labels).

    Raises:
        ValueError: if ``base`` has no metrics (every stored version has them).
    """
    if base.metrics is None:
        msg = f"result version {base.version} has no metrics to derive version {version} from"
        raise ValueError(msg)
    duration = base.metrics.input_duration_seconds
    text = rename_in_summary(summary.summary, names_of(base.results.speakers or []))
    return ResultVersion(
        version=version,
        created_at=datetime.now(UTC),
        kind="resummary",
        template_id=template_id,
        results=msgspec.structs.replace(base.results, summary=text),
        versions=msgspec.structs.replace(
            base.versions, summarization_llm=summary.version, template=summary.template
        ),
        metrics=msgspec.structs.replace(
            base.metrics,
            processing_time_seconds=round(summary.processing_time_s, 3),
            rtf=_rtf(summary.processing_time_s, duration),
        ),
    )


def renamed_version(
    base: ResultVersion, version: int, *, names: Mapping[str, str], original: ResultVersion
) -> ResultVersion:
    """Version ``version`` of a task: ``base`` (its latest) with ``names`` for some of its speakers.

    Each renamed speaker's name replaces its label (or the name it had) everywhere: in the
    segments and words, the turns, the speaker list and the summary's text. Segments and turns
    are renamed from ``original`` (version 1, which holds the labels), so renaming a speaker
    twice is exact; the summary is rewritten from ``base``'s.

    Args:
        base: The latest version.
        version: The new version's number.
        names: Label to new name, for labels of ``base.results.speakers``.
        original: The task's version 1.

    Raises:
        ValueError: if a label of ``names`` is not one of ``base``'s speakers.
    """
    speakers = base.results.speakers or []
    shown = {s.id: s.name or s.id for s in speakers}
    if unknown := sorted(set(names) - set(shown)):
        msg = f"no speaker {', '.join(unknown)} in result version {base.version}"
        raise ValueError(msg)
    merged = {**names_of(speakers), **names}
    results = base.results
    return ResultVersion(
        version=version,
        created_at=datetime.now(UTC),
        kind="speakers",
        template_id=base.template_id,
        results=msgspec.structs.replace(
            results,
            segments=rename_segments(original.results.segments or [], merged),
            speaker_turns=rename_turns(original.results.speaker_turns or [], merged),
            speakers=[msgspec.structs.replace(s, name=merged.get(s.id)) for s in speakers],
            summary=(
                rename_in_summary(results.summary, {shown[label]: name for label, name in names.items()})
                if results.summary is not None
                else None
            ),
        ),
        versions=base.versions,
        metrics=(
            msgspec.structs.replace(base.metrics, processing_time_seconds=0.0, rtf=0.0)
            if base.metrics is not None
            else None
        ),
    )
