"""Settings of the models: ASR backends (Whisper, PocketSphinx, ChunkFormer) and the LLM."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec

from maie.config.fields import (
    ASR_BACKENDS,
    MAX_PROMPT_CHARS,
    MAX_TEMPERATURE,
    NonNegative,
    NonNegativeFloat,
    Positive,
    PositiveFloat,
    Probability,
    TopK,
    TopP,
    env_names,
)

__all__ = [
    "VARIANT_NAME",
    "AsrSettings",
    "ChunkformerSettings",
    "LlmSettings",
    "PocketsphinxSettings",
    "WhisperSettings",
]


#: What a model variant's name may be (``MAIE_WHISPER_MODELS``, a request's ``model``).
VARIANT_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class AsrSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("ASR_")):
    """Choice of ASR backend."""

    #: Backend used when a request names none.
    backend: str = "whisper"
    #: Comma-separated backends tried in order when the chosen one cannot be loaded on the worker
    #: (e.g. ``pocketsphinx``); empty means no fallback. Every fallback is logged and recorded.
    fallback: str = ""
    #: Tasks waiting for the same backend that one ASR worker may transcribe together (1: one by one).
    batch_max_tasks: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    #: Seconds of audio an ASR backend holds in memory at once: longer recordings are transcribed
    #: in windows of this length, cut at the quietest moment near their end (Whisper, ChunkFormer).
    window_s: Annotated[int, msgspec.Meta(ge=60, le=14_400)] = 300

    def fallback_chain(self) -> tuple[str, ...]:
        """The fallback backend ids, in order, without blanks or repeats."""
        return tuple(dict.fromkeys(b.strip() for b in self.fallback.split(",") if b.strip()))

    def __post_init__(self) -> None:
        known = ", ".join(ASR_BACKENDS)
        if self.backend not in ASR_BACKENDS:
            msg = f"MAIE_ASR_BACKEND={self.backend!r} is not an ASR backend; known: {known}"
            raise ValueError(msg)
        if unknown := [b for b in self.fallback_chain() if b not in ASR_BACKENDS]:
            msg = f"MAIE_ASR_FALLBACK names unknown backend(s) {', '.join(unknown)}; known: {known}"
            raise ValueError(msg)


class WhisperSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("WHISPER_")):
    """faster-whisper decoding; see docs/configuration.md for each knob."""

    #: Model name (downloaded into MAIE_DATA_DIR/models) or a local CTranslate2 folder.
    #: Unset means large-v3-turbo on a GPU and small on a CPU.
    model: str | None = None
    #: Several models a request can choose from with ``model=<name>``: ``name=folder-or-model-name``,
    #: comma-separated, the first being the default. Unset: MAIE_WHISPER_MODEL is the only one.
    models: str | None = None
    #: ``auto``, ``cuda`` or ``cpu``.
    device: Literal["auto", "cuda", "cpu"] = "auto"
    #: CTranslate2 compute type; ``auto`` means float16 on a GPU and int8 on a CPU.
    compute_type: str = "auto"
    #: Beam width; 1 is greedy decoding.
    beam_size: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    #: Comma-separated fallback temperatures, e.g. ``0.0,0.2,0.4``.
    temperature: str = "0.0,0.2,0.4,0.6,0.8,1.0"
    #: Give the model the previous window's text as a prompt (more consistent, but can loop).
    condition_on_previous_text: bool = True
    #: ISO 639-1 code, or unset to detect.
    language: str | None = None
    #: Word-level timestamps in segments by default (a request can ask for them too).
    word_timestamps: bool = False
    #: Skip non-speech with the bundled Silero VAD before decoding.
    vad_filter: bool = True
    #: Speech probability above which a frame counts as speech.
    vad_threshold: Probability = 0.5
    #: Shorter speech runs are dropped, in milliseconds.
    vad_min_speech_duration_ms: NonNegative = 250
    #: Silence this long ends a speech run, in milliseconds.
    vad_min_silence_duration_ms: NonNegative = 2000
    #: Padding kept around each speech run, in milliseconds.
    vad_speech_pad_ms: NonNegative = 400
    #: Upper bound on tokens per 30 s window; unset means the model's own limit.
    max_new_tokens: Positive | None = None
    #: CPU threads for CTranslate2; 0 lets it choose.
    cpu_threads: NonNegative = 0
    #: Words or phrases to favour (names, jargon), given to Whisper as hotwords; a request may set its own.
    hotwords: Annotated[str, msgspec.Meta(max_length=MAX_PROMPT_CHARS)] | None = None
    #: Text that primes the first window (spelling, style); a request may set its own.
    initial_prompt: Annotated[str, msgspec.Meta(max_length=MAX_PROMPT_CHARS)] | None = None
    #: Batch size of faster-whisper's BatchedInferencePipeline (needs VAD); unset decodes sequentially.
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=256)] | None = None
    #: 30 s windows of speech, spread over the recording, that language detection looks at.
    language_detection_segments: Annotated[int, msgspec.Meta(ge=1, le=16)] = 3

    def temperatures(self) -> tuple[float, ...]:
        """The fallback temperatures as floats."""
        return tuple(float(t) for t in self.temperature.split(",") if t.strip())

    def model_variants(self) -> tuple[tuple[str, str], ...]:
        """The ``(name, model)`` pairs of MAIE_WHISPER_MODELS in order; empty when it is unset."""
        if not self.models:
            return ()
        pairs = []
        for item in self.models.split(","):
            name, _, model = item.strip().partition("=")
            pairs.append((name.strip(), model.strip()))
        return tuple(pairs)

    def with_default_variant(self, name: str) -> WhisperSettings:
        """These settings with variant ``name`` first in MAIE_WHISPER_MODELS (so it is the one loaded).

        Raises:
            KeyError: if MAIE_WHISPER_MODELS names no such variant.
        """
        pairs = self.model_variants()
        chosen = [pair for pair in pairs if pair[0] == name]
        if not chosen:
            raise KeyError(name)
        ordered = [*chosen, *(pair for pair in pairs if pair[0] != name)]
        return msgspec.structs.replace(self, models=",".join(f"{n}={m}" for n, m in ordered))

    def _check_variants(self) -> None:
        pairs = self.model_variants()
        if not pairs:
            return
        if self.model:
            msg = (
                "set MAIE_WHISPER_MODELS or MAIE_WHISPER_MODEL, not both: with MAIE_WHISPER_MODELS the "
                "first variant is the default"
            )
            raise ValueError(msg)
        names = [name for name, _ in pairs]
        for name, model in pairs:
            if not VARIANT_NAME.match(name) or not model:
                msg = (
                    "MAIE_WHISPER_MODELS must be name=folder-or-model-name, comma-separated, with names "
                    f"of letters, digits, '.', '_' or '-'; got {name!r}={model!r}"
                )
                raise ValueError(msg)
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            msg = f"MAIE_WHISPER_MODELS names {', '.join(repeated)} more than once"
            raise ValueError(msg)

    def __post_init__(self) -> None:
        self._check_variants()
        try:
            values = self.temperatures()
        except ValueError:
            msg = f"MAIE_WHISPER_TEMPERATURE must be comma-separated numbers, got {self.temperature!r}"
            raise ValueError(msg) from None
        if not values or any(not 0 <= t <= MAX_TEMPERATURE for t in values):
            msg = "MAIE_WHISPER_TEMPERATURE needs at least one value, each between 0 and 2"
            raise ValueError(msg)
        if self.batch_size is not None and not self.vad_filter:
            msg = "MAIE_WHISPER_BATCH_SIZE splits audio with VAD: it needs MAIE_WHISPER_VAD_FILTER=true"
            raise ValueError(msg)


class PocketsphinxSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("POCKETSPHINX_")):
    """PocketSphinx, the small offline English recognizer (extra ``pocketsphinx``)."""

    #: Acoustic model folder; unset means the US English model shipped in the pocketsphinx wheel.
    model: Path | None = None
    #: Language model file (ARPA or binary); unset means the shipped US English one.
    lm: Path | None = None
    #: Pronunciation dictionary; unset means the shipped CMU dictionary.
    dictionary: Path | None = None
    #: ISO 639-1 code of the language the model recognises (requests for others are refused).
    language: Annotated[str, msgspec.Meta(pattern="^[a-z]{2,3}$")] = "en"
    #: Aggressiveness of the voice activity detector that splits audio into utterances, 0-3.
    vad_mode: Annotated[int, msgspec.Meta(ge=0, le=3)] = 0
    #: Seconds of audio each speech/non-speech decision looks at.
    vad_window_s: Annotated[float, msgspec.Meta(ge=0.1, le=5.0)] = 0.3
    #: Share of a window that must agree before speech starts or stops.
    vad_ratio: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.9


class ChunkformerSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("CHUNKFORMER_")):
    """ChunkFormer long-form ASR (extra ``chunkformer``)."""

    #: Local model folder (config.yaml, pytorch_model.bin, vocab.txt) or a model hub repo id
    #: (downloaded into MAIE_DATA_DIR/models on first use).
    model: str = "khanhld/chunkformer-ctc-large-vie"
    #: ISO 639-1 code of the language the model was trained on (requests for others are refused).
    language: Annotated[str, msgspec.Meta(pattern="^[a-z]{2,3}$")] = "vi"
    #: ``auto``, ``cuda`` or ``cpu``.
    device: Literal["auto", "cuda", "cpu"] = "auto"
    #: Frames per attention chunk (after subsampling).
    chunk_size: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 64
    #: Frames of left context each chunk attends to.
    left_context_size: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 128
    #: Frames of right context each chunk attends to.
    right_context_size: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 128
    #: Seconds of audio the device processes in one pass (bounds memory on long recordings).
    total_batch_duration_s: Annotated[int, msgspec.Meta(ge=10, le=36000)] = 1800
    #: Segments with start and end times; off gives one segment per recording and lets a batch of
    #: tasks be decoded together with batch_decode.
    return_timestamps: bool = True
    #: Silence, in seconds, that ends a segment when timestamps are on.
    max_silence_duration_s: Annotated[float, msgspec.Meta(gt=0, le=10)] = 0.5


class LlmSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("LLM_")):
    """LLM backend for enhancement and summaries; see docs/llm.md.

    Generation parameters left unset fall through to the model's generation_config.json, then to
    the library defaults (vLLM's), per task.
    """

    #: ``vllm``, ``openai`` or ``none``.
    backend: Literal["none", "vllm", "openai"] = "none"
    #: OpenAI-compatible server of the ``openai`` backend, e.g. ``http://127.0.0.1:8001/v1``.
    base_url: str | None = None
    #: Bearer token for that server.
    api_key: str | None = None
    #: Model of ``clean_transcript``: a served model name (openai) or a folder / hub id (vllm).
    #: Unset means the summary model.
    enhancement_model: str | None = None
    #: Model of ``summary``. Unset means the enhancement model.
    summary_model: str | None = None
    #: Enhancement sampling temperature (0 is greedy).
    enhancement_temperature: NonNegativeFloat | None = None
    #: Enhancement nucleus sampling mass, in (0, 1].
    enhancement_top_p: TopP | None = None
    #: Enhancement top-k; 0 or -1 disables it.
    enhancement_top_k: TopK | None = None
    #: Enhancement output cap per request, in tokens; unset sizes it from the chunk.
    enhancement_max_tokens: Positive | None = None
    #: Enhancement repetition penalty (1 is none).
    enhancement_repetition_penalty: PositiveFloat | None = None
    #: Summary sampling temperature (0 is greedy).
    summary_temperature: NonNegativeFloat | None = None
    #: Summary nucleus sampling mass, in (0, 1].
    summary_top_p: TopP | None = None
    #: Summary top-k; 0 or -1 disables it.
    summary_top_k: TopK | None = None
    #: Summary output cap per request, in tokens; unset means a quarter of the context, at most 4096.
    summary_max_tokens: Positive | None = None
    #: Summary repetition penalty (1 is none).
    summary_repetition_penalty: PositiveFloat | None = None
    #: Context window in tokens. Unset: what the server reports (openai) or the model's config (vllm).
    max_model_len: Positive | None = None
    #: Most transcript tokens in one enhancement request; longer transcripts are split on segments.
    enhancement_chunk_tokens: Positive = 1024
    #: Most transcript tokens in one summary request; longer transcripts are summarised in parts
    #: and merged (map-reduce). Unset: as many as the context holds.
    summary_chunk_tokens: Positive | None = None
    #: tokenizer.json (or a folder with one) for exact token counts with the ``openai`` backend.
    #: Unset: counts are estimated from UTF-8 length (see MAIE_LLM_BYTES_PER_TOKEN).
    tokenizer: str | None = None
    #: Bytes of UTF-8 text per token assumed when no tokenizer is known; lower is safer.
    bytes_per_token: PositiveFloat = 2.0
    #: Share of GPU memory vLLM may take (weights, activations, KV cache).
    gpu_memory_utilization: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.85
    #: vLLM quantization method (``awq``, ``gptq``, ``fp8``...); unset reads the checkpoint's config.
    quantization: str | None = None
    #: vLLM weight dtype: ``auto``, ``bfloat16``, ``float16`` or ``float32``.
    dtype: str = "auto"
    #: Chat template for vLLM: a name from assets/chat-templates (``qwen3_nonthinking``) or a file.
    #: Unset: the model's own.
    chat_template: str | None = None
    #: Let thinking models reason before answering (slower; off for transcripts and summaries).
    thinking: bool = False
    #: Seconds one LLM request may take before it is abandoned and retried.
    timeout_s: PositiveFloat = 300.0
    #: Seconds to wait for a connection to the LLM server.
    connect_timeout_s: PositiveFloat = 10.0
    #: Retries of one request after a 5xx, 429, timeout or connection error.
    retries: NonNegative = 3
    #: First pause between those retries, in seconds; it doubles each time, up to 30 s.
    retry_backoff_s: NonNegativeFloat = 1.0
    #: Requests in flight at once per task (chunks of a long transcript, map-step parts).
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    #: Times an answer that is not valid JSON, violates the schema or is cut off is asked for again.
    schema_retries: NonNegative = 2
    #: Least similarity (0-1, letters only) between a raw and a cleaned segment; below it the
    #: cleaned text is taken to have changed what was said, and the raw text is kept.
    enhancement_min_similarity: Probability = 0.5
    #: In resident mode, put an idle vLLM engine to sleep (weights to CPU memory) between tasks.
    sleep_when_idle: bool = True
    #: Send vLLM's extra sampling fields (top_k, repetition_penalty, chat_template_kwargs) to the
    #: OpenAI-compatible server; turn off for servers that refuse unknown fields.
    openai_extra_params: bool = True

    def model_for(self, task: Literal["enhancement", "summary"]) -> str | None:
        """The model of ``task``, falling back to the other task's model."""
        if task == "enhancement":
            return self.enhancement_model or self.summary_model
        return self.summary_model or self.enhancement_model

    def __post_init__(self) -> None:
        if self.backend == "none":
            return
        if not (self.enhancement_model or self.summary_model):
            msg = (
                f"MAIE_LLM_BACKEND={self.backend} needs a model: set MAIE_LLM_SUMMARY_MODEL "
                "(and MAIE_LLM_ENHANCEMENT_MODEL for a different cleaning model)"
            )
            raise ValueError(msg)
        if self.backend == "openai" and not self.base_url:
            msg = "MAIE_LLM_BACKEND=openai needs MAIE_LLM_BASE_URL, e.g. http://127.0.0.1:8001/v1"
            raise ValueError(msg)
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            msg = f"MAIE_LLM_BASE_URL must be an http(s) URL, got {self.base_url!r}"
            raise ValueError(msg)
