"""Settings, built once at start from ``MAIE_*`` environment variables and an optional ``.env``.

Each concern is one frozen msgspec Struct whose encoded field names *are* the environment variable
names, so a validation error names the variable at fault. :meth:`Settings.from_env` is the only
constructor the service uses; the result is passed down explicitly (``create_app(settings)``,
``build_broker(settings)``), never read from a global.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from dotenv import dotenv_values

from maie.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "AsrSettings",
    "AudioSettings",
    "AuthSettings",
    "BatchSettings",
    "ChunkformerSettings",
    "ClientSettings",
    "LlmSettings",
    "LogSettings",
    "PocketsphinxSettings",
    "RateLimitSettings",
    "RedisSettings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "WebhookSettings",
    "WhisperSettings",
    "WorkerSettings",
]

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
TopP = Annotated[float, msgspec.Meta(gt=0, le=1)]
TopK = Annotated[int, msgspec.Meta(ge=-1)]

#: Highest sampling temperature accepted in MAIE_WHISPER_TEMPERATURE.
MAX_TEMPERATURE = 2.0
#: ASR backend ids MAIE_ASR_BACKEND and MAIE_ASR_FALLBACK may name; the registry
#: (maie/pipeline/asr/registry.py) registers exactly these, which a test checks.
ASR_BACKENDS = ("whisper", "pocketsphinx", "chunkformer")
#: Longest Whisper prompt text (hotwords, initial prompt) accepted, in characters. Whisper keeps at
#: most 223 prompt tokens anyway; this bound only stops absurd values early.
MAX_PROMPT_CHARS = 1000

#: Smallest decode memory limit, in MiB: decoding even hours of audio adds under 32 MiB
#: (scripts/bench_decode.py measures it), so less would refuse good files.
MIN_DECODE_MEMORY_MB = 64

#: Values of MAIE_RATE_LIMIT and MAIE_RATE_LIMIT_SUBMIT that turn the limit off.
RATE_LIMIT_OFF = frozenset({"off", "none", "0"})

#: Words accepted for booleans besides msgspec's own ``true/false/1/0``.
_BOOL_WORDS = {"yes": "true", "on": "true", "no": "false", "off": "false"}


def _env(prefix: str) -> Any:  # noqa: ANN401 - msgspec's rename accepts any callable
    return lambda field: f"MAIE_{prefix}{field.upper()}"


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("")):
    """The HTTP edge."""

    #: Bind address of the API.
    host: str = "127.0.0.1"
    #: Port of the API.
    port: Port = 8000
    #: Largest accepted upload, in MiB; larger bodies are refused with 413.
    max_file_size_mb: PositiveFloat = 500
    #: Active tasks at which submissions are refused with 429.
    max_queue_depth: Positive = 50
    #: Seconds a poller is told to wait (``Retry-After``) while a task is not finished.
    status_retry_after_s: Positive = 2
    #: Seconds a client is told to wait after a 429 or 503.
    busy_retry_after_s: Positive = 10
    #: Show exception details in error responses (never in production).
    debug: bool = False
    #: Public base URL of the API (e.g. https://maie.example.com), for absolute links in webhooks;
    #: unset means the links are paths such as /v1/status/<id>.
    public_url: str | None = None
    #: Milliseconds between two looks at a task while streaming its events (/v1/status/{id}/events).
    events_poll_ms: Annotated[int, msgspec.Meta(ge=50, le=60_000)] = 500

    def __post_init__(self) -> None:
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            msg = f"MAIE_PUBLIC_URL must start with http:// or https://, got {self.public_url!r}"
            raise ValueError(msg)


class RedisSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("REDIS_")):
    """Broker and store."""

    #: External Redis; unset means the embedded server of ``maie up`` (``MAIE_DATA_DIR/redis/url``).
    url: str | None = None
    #: Database number of the task store (the broker uses the database in the URL).
    results_db: NonNegative = 1


class StorageSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("")):
    """Files and record lifetimes."""

    #: Root of uploads, embedded Redis data and models.
    data_dir: Path = Path("data")
    #: Keep uploads and the normalised WAV after a task finishes.
    keep_audio: bool = False
    #: Seconds task records and results live in Redis.
    result_ttl_s: Positive = 86400
    #: Folder of summary templates; unset means the templates shipped with MAIE.
    templates_dir: Path | None = None


class AudioSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("")):
    """What audio is accepted."""

    #: Shortest accepted recording, in seconds.
    min_duration_s: NonNegativeFloat = 1.0
    #: Longest accepted recording, in seconds.
    max_duration_s: PositiveFloat = 14400.0
    #: Seconds one decode of an upload may take before it is abandoned (a poison file fails alone).
    decode_time_limit_s: PositiveFloat = 600.0
    #: MiB of memory one decode of an upload may allocate (a poison file fails alone); 0: no limit.
    decode_memory_limit_mb: NonNegative = 512

    def __post_init__(self) -> None:
        if 0 < self.decode_memory_limit_mb < MIN_DECODE_MEMORY_MB:
            msg = f"MAIE_DECODE_MEMORY_LIMIT_MB must be 0 (no limit) or at least {MIN_DECODE_MEMORY_MB}"
            raise ValueError(msg)
        if self.min_duration_s >= self.max_duration_s:
            msg = "MAIE_MIN_DURATION_S must be smaller than MAIE_MAX_DURATION_S"
            raise ValueError(msg)


class AsrSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("ASR_")):
    """Choice of ASR backend."""

    #: Backend used when a request names none.
    backend: str = "whisper"
    #: Comma-separated backends tried in order when the chosen one cannot be loaded on the worker
    #: (e.g. ``pocketsphinx``); empty means no fallback. Every fallback is logged and recorded.
    fallback: str = ""
    #: Tasks waiting for the same backend that one ASR worker may transcribe together (1: one by one).
    batch_max_tasks: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1

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


class WhisperSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("WHISPER_")):
    """faster-whisper decoding; see docs/configuration.md for each knob."""

    #: Model name (downloaded into MAIE_DATA_DIR/models) or a local CTranslate2 folder.
    #: Unset means large-v3-turbo on a GPU and small on a CPU.
    model: str | None = None
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

    def __post_init__(self) -> None:
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


class PocketsphinxSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("POCKETSPHINX_")):
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


class ChunkformerSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("CHUNKFORMER_")):
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


class LlmSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("LLM_")):
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


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("")):
    """Worker behaviour."""

    #: ``sequential`` unloads models after each stage; ``resident`` keeps them loaded.
    #: Unset means sequential on a GPU and resident on a CPU.
    model_residency: Literal["sequential", "resident"] | None = None
    #: Models a worker keeps loaded in ``resident`` mode before unloading the least recently used.
    resident_max_models: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2
    #: Retries of a transient failure before the task fails.
    max_retries: NonNegative = 3
    #: Shortest and longest back-off between retries, in milliseconds.
    retry_min_backoff_ms: Positive = 1000
    retry_max_backoff_ms: Positive = 60000
    #: Worker threads per worker process.
    worker_threads: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    #: Time limit of the preprocess stage, in seconds.
    preprocess_time_limit_s: Positive = 900
    #: Time limit of each model stage (ASR, LLM), in seconds.
    model_stage_time_limit_s: Positive = 7200
    #: Seconds without a heartbeat after which a worker's unfinished messages are handed to others.
    worker_heartbeat_timeout_s: Positive = 60
    #: Chance, per million broker commands, that a worker looks for a dead worker's messages.
    worker_requeue_check_per_million: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    #: Longest pause, in milliseconds, between two polls of an idle queue (stage hand-off latency).
    worker_poll_ms: Annotated[int, msgspec.Meta(ge=10, le=10_000)] = 100
    #: Seconds a stopping worker waits for running stages before it leaves them to redelivery.
    worker_stop_timeout_s: Positive = 30
    #: Port of the worker's own Prometheus endpoint (``/metrics``); 0 turns it off.
    worker_metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    #: Bind address of the worker's Prometheus endpoint.
    worker_metrics_host: str = "127.0.0.1"


class AuthSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("")):
    """API keys and webhook signing."""

    #: ``key`` or ``key:tenant``, comma-separated.
    api_keys: str = ""
    #: HMAC key of webhook signatures.
    webhook_secret: str | None = None

    def tenants_by_key(self) -> dict[str, str]:
        """Map each API key to its tenant (``default`` when none is given)."""
        keys: dict[str, str] = {}
        for item in self.api_keys.split(","):
            key, _, tenant = item.strip().partition(":")
            if key:
                keys[key] = tenant.strip() or "default"
        return keys

    def __post_init__(self) -> None:
        for item in self.api_keys.split(","):
            key, sep, tenant = item.strip().partition(":")
            if item.strip() and (not key or (sep and not tenant.strip())):
                msg = f"MAIE_API_KEYS entries are 'key' or 'key:tenant', got {item.strip()!r}"
                raise ValueError(msg)


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("WEBHOOK_")):
    """Delivery of task webhooks (``callback_url``); the signing key is MAIE_WEBHOOK_SECRET."""

    #: Allow callback URLs on loopback, private and link-local addresses (trusted networks, tests).
    allow_private: bool = False
    #: Seconds one delivery attempt may take: connect, send and read the answer.
    timeout_s: PositiveFloat = 10.0
    #: Attempts after the first before an event is given up.
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=30)] = 12
    #: Back-off before the first retry, in milliseconds; it doubles with each retry after that.
    min_backoff_ms: Positive = 2000
    #: Longest back-off between two attempts, in milliseconds.
    max_backoff_ms: Positive = 3_600_000


class BatchSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("BATCH_")):
    """Batches (POST /v1/batches): upload size and archive unpacking limits."""

    #: Largest batch upload (all parts together), in MiB.
    max_upload_mb: PositiveFloat = 4096
    #: Most entries an archive may hold (files, folders and links together).
    max_members: Positive = 1000
    #: Most bytes one batch may unpack to, in MiB.
    max_unpacked_mb: PositiveFloat = 8192
    #: Highest compression ratio accepted (per zip member, and overall); beyond it the archive
    #: is refused as a zip bomb.
    max_ratio: PositiveFloat = 100.0


class ClientSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("")):
    """What ``maie submit``, ``maie status`` and ``maie result`` use to reach a server."""

    #: Base URL of the API; unset means http://MAIE_HOST:MAIE_PORT.
    url: str | None = None
    #: API key to send; unset means the first of MAIE_API_KEYS, else MAIE_DATA_DIR/dev-api-key.
    api_key: str | None = None


class LogSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("LOG_")):
    """Logging."""

    #: Lowest level written: debug, info, warning or error.
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: ``console`` for people, ``json`` for log shippers, ``auto`` picks by terminal.
    format: Literal["auto", "console", "json"] = "auto"


class RateLimitSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_env("")):
    """Requests each API key may send, counted in Redis so every API process shares the count."""

    #: Every ``/v1`` request of one key, e.g. ``1200/minute`` or ``20/second;1200/minute``; ``off``.
    rate_limit: str = "1200/minute"
    #: Submissions (``POST /v1/process``) of one key, on top of ``MAIE_RATE_LIMIT``; ``off``.
    rate_limit_submit: str = "120/minute"

    def __post_init__(self) -> None:
        from limits import parse_many  # noqa: PLC0415 - only settings need it; keeps `maie --help` fast

        for name, value in (
            ("MAIE_RATE_LIMIT", self.rate_limit),
            ("MAIE_RATE_LIMIT_SUBMIT", self.rate_limit_submit),
        ):
            if value.strip().lower() in RATE_LIMIT_OFF:
                continue
            try:
                parse_many(value)
            except ValueError:
                msg = (
                    f"{name} must look like '120/minute' (several joined by ';', units second, minute, "
                    f"hour or day) or be 'off', got {value!r}"
                )
                raise ValueError(msg) from None


_GROUPS: dict[str, type[msgspec.Struct]] = {
    "server": ServerSettings,
    "redis": RedisSettings,
    "storage": StorageSettings,
    "audio": AudioSettings,
    "asr": AsrSettings,
    "whisper": WhisperSettings,
    "pocketsphinx": PocketsphinxSettings,
    "chunkformer": ChunkformerSettings,
    "llm": LlmSettings,
    "worker": WorkerSettings,
    "auth": AuthSettings,
    "log": LogSettings,
    "rate_limit": RateLimitSettings,
    "webhook": WebhookSettings,
    "batch": BatchSettings,
    "client": ClientSettings,
}


def _env_names(group: type[msgspec.Struct]) -> dict[str, msgspec.structs.FieldInfo]:
    return {f.encode_name: f for f in msgspec.structs.fields(group)}


def known_variables() -> set[str]:
    """Every ``MAIE_*`` variable MAIE reads."""
    return {name for group in _GROUPS.values() for name in _env_names(group)}


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """All settings, one Struct per concern."""

    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    audio: AudioSettings = msgspec.field(default_factory=AudioSettings)
    asr: AsrSettings = msgspec.field(default_factory=AsrSettings)
    whisper: WhisperSettings = msgspec.field(default_factory=WhisperSettings)
    pocketsphinx: PocketsphinxSettings = msgspec.field(default_factory=PocketsphinxSettings)
    chunkformer: ChunkformerSettings = msgspec.field(default_factory=ChunkformerSettings)
    llm: LlmSettings = msgspec.field(default_factory=LlmSettings)
    worker: WorkerSettings = msgspec.field(default_factory=WorkerSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    rate_limit: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    webhook: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    batch: BatchSettings = msgspec.field(default_factory=BatchSettings)
    client: ClientSettings = msgspec.field(default_factory=ClientSettings)
    #: ``MAIE_*`` variables that were set but that MAIE does not know (likely typos).
    unknown_variables: tuple[str, ...] = ()

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        env_file: Path | None = Path(".env"),
    ) -> Settings:
        """Build the settings from the environment, over values from ``env_file`` if it exists.

        Empty values count as unset, so ``.env.example`` can list every variable.

        Raises:
            ConfigError: naming every variable whose value is invalid and why.
        """
        raw: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            raw.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        raw.update(os.environ if environ is None else environ)
        values = {k: v.strip() for k, v in raw.items() if k.startswith("MAIE_") and v.strip()}

        groups: dict[str, Any] = {}
        problems: list[str] = []
        for attr, group in _GROUPS.items():
            fields = _env_names(group)
            mine = {k: _normalise(v, fields[k]) for k, v in values.items() if k in fields}
            try:
                groups[attr] = msgspec.convert(mine, group, strict=False, dec_hook=_decode_extra)
            except msgspec.ValidationError as exc:
                problems.append(_explain(exc, mine))
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        unknown = tuple(sorted(set(values) - known_variables()))
        return cls(**groups, unknown_variables=unknown)

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict fit for a log line: secrets replaced by ``***``."""
        data: dict[str, Any] = msgspec.to_builtins(self, enc_hook=str)
        auth = data.get("auth", {})
        for secret in ("MAIE_API_KEYS", "MAIE_WEBHOOK_SECRET"):
            if auth.get(secret):
                auth[secret] = "***"
        client = data.get("client", {})
        if client.get("MAIE_API_KEY"):
            client["MAIE_API_KEY"] = "***"
        llm = data.get("llm", {})
        if llm.get("MAIE_LLM_API_KEY"):
            llm["MAIE_LLM_API_KEY"] = "***"
        return data


def _decode_extra(kind: type, value: object) -> object:
    """Build types msgspec does not convert from strings itself (paths)."""
    if kind is Path and isinstance(value, str):
        return Path(value)
    msg = f"cannot read {kind.__name__} from {value!r}"
    raise NotImplementedError(msg)


def _normalise(value: str, field: msgspec.structs.FieldInfo) -> str:
    if field.type in (bool, bool | None):
        return _BOOL_WORDS.get(value.lower(), value)
    return value


def _explain(exc: msgspec.ValidationError, values: Mapping[str, str]) -> str:
    """Turn msgspec's ``... - at `$.MAIE_PORT``` into ``MAIE_PORT='abc': expected int``."""
    message = str(exc)
    reason, _, where = message.rpartition(" - at `$.")
    if not reason:
        return message
    name = where.rstrip("`")
    return f"{name}={values.get(name, '')!r}: {reason[0].lower()}{reason[1:]}"
