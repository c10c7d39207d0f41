"""What stages produce and results hold: segments, artifacts, model versions, metrics, result versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from maie.schemas.base import Frozen, Seconds, Unit
from maie.schemas.diarization import DiarizationVersion, SpeakerInfo, SpeakerTurn

__all__ = [
    "AsrArtifact",
    "AsrVersion",
    "AudioInfo",
    "EnhanceArtifact",
    "EnhancementMetrics",
    "FetchArtifact",
    "LlmVersion",
    "MapReduceInfo",
    "Metrics",
    "PreprocessArtifact",
    "ResultVersion",
    "Results",
    "Segment",
    "SummaryArtifact",
    "TemplateVersion",
    "Versions",
    "Word",
]


class Word(Frozen, frozen=True, kw_only=True):
    """One word with its time span."""

    start: Seconds
    end: Seconds
    word: str
    probability: Unit
    #: Speaker label (``SPEAKER_00``...) when the task was diarized; ``None`` otherwise.
    speaker: str | None = None


class Segment(Frozen, frozen=True, kw_only=True):
    """One transcript segment."""

    id: int
    start: Seconds
    end: Seconds
    text: str
    confidence: Unit | None = None
    words: list[Word] | None = None
    #: Speaker label (``SPEAKER_00``...) when the task was diarized; ``None`` otherwise.
    speaker: str | None = None


class AudioInfo(Frozen, frozen=True, kw_only=True):
    """What probing an audio file found."""

    container: str
    codec: str
    duration_s: Seconds
    channels: int
    sample_rate: int
    bit_rate: int | None = None


class FetchArtifact(Frozen, frozen=True, kw_only=True):
    """Output of the fetch stage: where the recording came from and what probing the file found."""

    #: The URL as given, without credentials.
    source_url: str
    #: ``direct``: the URL answered with the file; ``page``: it was found on a web page.
    via: str
    #: The recording in the task folder (``raw.<ext>``), as for an upload.
    audio_path: str
    source: AudioInfo
    size_bytes: int
    content_type: str | None = None
    #: The yt-dlp extractor that found it on a page (``generic`` for a plain page).
    extractor: str | None = None
    title: str | None = None
    redirects: int = 0


class PreprocessArtifact(Frozen, frozen=True, kw_only=True):
    """Output of the preprocess stage: the probed input and the normalised 16 kHz mono WAV."""

    source: AudioInfo
    wav_path: str
    duration_s: Seconds
    sample_rate: int = 16000


class AsrVersion(Frozen, frozen=True, kw_only=True):
    """Which ASR model and decoding options produced a transcript."""

    name: str
    model_variant: str
    model_path: str
    checkpoint_hash: str
    compute_type: str
    device: str
    decoding_params: dict[str, Any] = msgspec.field(default_factory=dict)
    fallback: str | None = None
    #: Whether this model writes punctuation and casing itself (then enhancement is skipped).
    native_punctuation: bool = False


class AsrArtifact(Frozen, frozen=True, kw_only=True):
    """Output of the transcribe stage."""

    text: str
    segments: list[Segment]
    language: str | None
    language_probability: Unit | None = None
    duration_s: Seconds
    vad_coverage: Unit | None = None
    confidence_avg: Unit | None = None
    processing_time_s: Seconds
    version: AsrVersion


class TemplateVersion(Frozen, frozen=True, kw_only=True):
    """Which template (schema and prompt, by hash) shaped a summary."""

    template_id: str
    schema_sha256: str
    prompt_sha256: str


class MapReduceInfo(Frozen, frozen=True, kw_only=True):
    """How a transcript too long for one request was summarised: parts, then merges."""

    #: Transcript parts summarised separately (the map step).
    parts: int
    #: Merge rounds until one summary was left (the reduce step); 1 when all parts fit one merge.
    reduce_rounds: int
    #: sha256 of the merge prompt.
    reduce_prompt_sha256: str


class LlmVersion(Frozen, frozen=True, kw_only=True):
    """Which LLM, prompt and decoding produced an enhanced transcript or a summary."""

    #: Backend id: ``vllm`` or ``openai``.
    name: str
    #: Model name or folder as configured.
    model: str
    #: sha256 of the weights where MAIE can read them (``vllm``); ``null`` behind an HTTP server.
    #: Always present, like the other fields of the contract without a default.
    checkpoint_hash: str | None
    #: Quantization method (``awq``, ``fp8``...) or ``null`` for the checkpoint's own precision.
    quantization: str | None
    #: ``enhancement`` or ``summary``.
    task: str
    #: Chat template: a shipped asset name, a file, or ``model default`` / ``server default``.
    chat_template: str | None
    #: Whether the model was allowed to think before answering.
    thinking: bool
    #: Resolved generation parameters sent with every request of the task.
    decoding_params: dict[str, Any] = msgspec.field(default_factory=dict)
    #: Where each decoding parameter came from: ``runtime``, ``env``, ``model`` or ``library``.
    decoding_sources: dict[str, str] = msgspec.field(default_factory=dict)
    #: How output was constrained, e.g. ``json_schema`` (``None`` for free text).
    structured_output: str | None = None
    #: sha256 of the task prompt MAIE sent (the enhancement prompt; templates record theirs apart).
    prompt_sha256: str | None = None
    #: Not filled any more (the server's address is internal; it is logged): kept so that results
    #: stored before still decode.
    base_url: str | None = None
    #: Transcript split for a long recording (summaries only).
    map_reduce: MapReduceInfo | None = None


class Versions(Frozen, frozen=True, kw_only=True):
    """Everything needed to say what produced a result."""

    pipeline_version: str
    asr_backend: AsrVersion | None = None
    enhancement_llm: LlmVersion | None = None
    summarization_llm: LlmVersion | None = None
    template: TemplateVersion | None = None
    #: The diarization backend, model and parameters, when the task was diarized.
    diarization: DiarizationVersion | None = None


class EnhancementMetrics(Frozen, frozen=True, kw_only=True):
    """How much transcript enhancement changed the raw transcript."""

    #: Character edit distance between raw and clean transcript over the raw length (rapidfuzz).
    edit_rate: Annotated[float, msgspec.Meta(ge=0)]
    #: Word edit distance over the raw word count.
    word_edit_rate: Annotated[float, msgspec.Meta(ge=0)]
    #: Segments in the transcript.
    segments: int
    #: Segments whose text the model changed.
    segments_changed: int = 0
    #: Segments whose cleaned text drifted too far from what was said, so the raw text was kept.
    segments_reverted: int = 0
    #: Requests the transcript was split into.
    chunks: int = 0
    #: Chunks whose answer stayed unusable after retries, so their raw text was kept.
    chunks_failed: int = 0
    #: True when enhancement did not run (the ASR model punctuates itself).
    skipped: bool = False
    #: Why it was skipped.
    reason: str | None = None


class EnhanceArtifact(Frozen, frozen=True, kw_only=True):
    """Output of the enhance stage: the cleaned transcript, segment by segment."""

    text: str
    segments: list[Segment]
    metrics: EnhancementMetrics
    #: ``None`` when enhancement was skipped.
    version: LlmVersion | None = None


class SummaryArtifact(Frozen, frozen=True, kw_only=True):
    """Output of the summarize stage: a summary that validated against its template's schema."""

    summary: dict[str, Any]
    template: TemplateVersion
    version: LlmVersion
    #: Requests sent, retries included.
    requests: int
    #: Answers refused (invalid JSON, schema violations, truncation) and asked again.
    retries: int = 0
    processing_time_s: Seconds


class Metrics(Frozen, frozen=True, kw_only=True):
    """Measurements of one pipeline run."""

    input_duration_seconds: Seconds
    processing_time_seconds: Seconds
    rtf: Seconds
    vad_coverage: Unit | None = None
    asr_confidence_avg: Unit | None = None
    edit_rate_cleaning: float | None = None
    #: Speakers found, when the task was diarized (0 for a recording without speech).
    num_speakers: Annotated[int, msgspec.Meta(ge=0)] | None = None
    #: Seconds the diarization stage took per second of audio, when the task was diarized.
    diarization_rtf: Seconds | None = None


class Results(Frozen, frozen=True, kw_only=True):
    """What a task produced, limited to the features it asked for."""

    raw_transcript: str | None = None
    clean_transcript: str | None = None
    summary: dict[str, Any] | None = None
    enhancement_metrics: EnhancementMetrics | None = None
    language: str | None = None
    segments: list[Segment] | None = None
    #: Each speaker with speaking time and segment count, when the task was diarized.
    speakers: list[SpeakerInfo] | None = None
    #: Who spoke when (turns of different speakers may overlap), when the task was diarized:
    #: what ``transcript.rttm`` exports.
    speaker_turns: list[SpeakerTurn] | None = None
    #: Best-effort notes on the result, e.g. fewer speakers found than asked for.
    warnings: list[str] | None = None


class ResultVersion(Frozen, frozen=True, kw_only=True):
    """One immutable result of a task: a pipeline run, a re-summarization or a rename of speakers."""

    version: int
    created_at: datetime
    kind: str
    results: Results
    versions: Versions
    metrics: Metrics | None = None
    template_id: str | None = None
