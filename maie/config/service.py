"""Settings of the service itself: HTTP, Redis, storage, audio, workers, auth, integrations, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

from maie.config.fields import (
    MIN_DECODE_MEMORY_MB,
    RATE_LIMIT_OFF,
    NonNegative,
    NonNegativeFloat,
    Port,
    Positive,
    PositiveFloat,
    env_names,
)

__all__ = [
    "AudioSettings",
    "AuthSettings",
    "BatchSettings",
    "ClientSettings",
    "FetchSettings",
    "LogSettings",
    "RateLimitSettings",
    "RedisSettings",
    "ServerSettings",
    "StorageSettings",
    "WebhookSettings",
    "WorkerSettings",
]


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
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
    #: Seconds an idle kept-alive connection stays open after a response.
    http_keep_alive_timeout_s: Positive = 5
    #: Seconds a client has to send the request line and headers (from connecting, or from the
    #: previous response); slower ones get 408 and are closed.
    http_header_timeout_s: PositiveFloat = 20
    #: Longest gap, in seconds, between two reads of a request body; also the grace before
    #: MAIE_HTTP_BODY_MIN_BYTES_PER_S counts. A body that stops (or a Content-Length larger than
    #: what is sent) is dropped after it.
    http_body_timeout_s: PositiveFloat = 30
    #: Lowest average upload rate, in bytes per second, after the grace; slower bodies are dropped.
    http_body_min_bytes_per_s: PositiveFloat = 500
    #: Open HTTP connections one API process serves; more get 503 and are closed at once.
    http_max_connections: Positive = 1000
    #: Seconds the OpenAI-compatible routes (/openai/v1/audio/*) wait for a task's result before
    #: answering 504 with the task's id, to be followed on /v1/status. Keep clients' own timeouts
    #: above it (the openai SDK waits 600 s), or they retry and submit the recording again.
    sync_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 300.0

    def __post_init__(self) -> None:
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            msg = f"MAIE_PUBLIC_URL must start with http:// or https://, got {self.public_url!r}"
            raise ValueError(msg)


class RedisSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("REDIS_")):
    """Broker and store."""

    #: External Redis; unset means the embedded server of ``maie up`` (``MAIE_DATA_DIR/redis/url``).
    url: str | None = None
    #: Database number of the live state: heartbeats, ASR leases, rate limits, metrics (the broker
    #: uses the database in the URL).
    results_db: NonNegative = 1


class StorageSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    """Files and record lifetimes."""

    #: Root of uploads, the embedded Redis and PostgreSQL, and models.
    data_dir: Path = Path("data")
    #: Keep uploads and the normalised WAV after a task finishes.
    keep_audio: bool = False
    #: Seconds an Idempotency-Key claim and an ASR waiting list live, and after which an unfinished
    #: task no longer counts toward the queue depth (it is stuck). Results are kept until deleted
    #: or purged by MAIE_RETENTION_DAYS.
    result_ttl_s: Positive = 86400
    #: Folder of summary templates; unset means the templates shipped with MAIE.
    templates_dir: Path | None = None
    #: Seconds between two sweeps, by each API, of uploads and batches left by an API that died mid-upload
    #: (each API also sweeps once on start).
    upload_sweep_interval_s: Positive = 60


class AudioSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
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


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
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


class AuthSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
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


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("WEBHOOK_")):
    """Delivery of task webhooks (``callback_url``); the signing key is MAIE_WEBHOOK_SECRET."""

    #: Allow callback URLs on loopback, private and shared addresses (trusted networks, tests);
    #: link-local addresses and cloud metadata services stay refused.
    allow_private: bool = False
    #: Seconds one delivery attempt may take: connect, send and read the answer.
    timeout_s: PositiveFloat = 10.0
    #: Attempts after the first before an event is given up.
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=30)] = 12
    #: Back-off before the first retry, in milliseconds; it doubles with each retry after that.
    min_backoff_ms: Positive = 2000
    #: Longest back-off between two attempts, in milliseconds.
    max_backoff_ms: Positive = 3_600_000


class FetchSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("FETCH_")):
    """Recordings by URL (the ``url`` field): what a fetch may reach and how long it may take.

    The size and duration limits are those of uploads (MAIE_MAX_FILE_SIZE_MB, MAIE_MAX_DURATION_S).
    """

    #: Allow URLs whose host resolves to loopback, private and shared addresses (sources on the
    #: same network); link-local addresses and cloud metadata services stay refused.
    allow_private: bool = False
    #: Seconds to open one connection (each address, each redirect hop).
    connect_timeout_s: PositiveFloat = 10.0
    #: Seconds one fetch may take in all: page, redirects and download.
    total_timeout_s: PositiveFloat = 1800.0
    #: Seconds without a byte from the server before the transfer counts as stalled (retried).
    stall_timeout_s: PositiveFloat = 30.0
    #: Slowest accepted transfer, in bytes per second over each stall window; 0 turns it off.
    min_bytes_per_s: NonNegative = 4096
    #: Redirects followed per request before the URL is refused.
    max_redirects: Annotated[int, msgspec.Meta(ge=0, le=30)] = 5
    #: Largest web page (or other answer read while looking for the media), in MiB.
    max_page_mb: PositiveFloat = 8.0


class BatchSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("BATCH_")):
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


class ClientSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    """What ``maie submit``, ``maie status`` and ``maie result`` use to reach a server."""

    #: Base URL of the API; unset means http://MAIE_HOST:MAIE_PORT.
    url: str | None = None
    #: API key to send; unset means the first of MAIE_API_KEYS, else MAIE_DATA_DIR/dev-api-key.
    api_key: str | None = None


class LogSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("LOG_")):
    """Logging."""

    #: Lowest level written: debug, info, warning or error.
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: ``console`` for people, ``json`` for log shippers, ``auto`` picks by terminal.
    format: Literal["auto", "console", "json"] = "auto"


class RateLimitSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    """Requests each API key may send, counted in Redis so every API process shares the count."""

    #: Every ``/v1`` request of one key, e.g. ``6000/minute`` or ``100/second;6000/minute``; ``off``.
    #: The default lets an integration poll a few hundred tasks every 2 s.
    rate_limit: str = "6000/minute"
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
