"""Settings, built once at start from ``MAIE_*`` environment variables and an optional ``.env``.

Each concern is one frozen msgspec Struct whose encoded field names *are* the environment variable
names, so a validation error names the variable at fault. :meth:`Settings.from_env` is the only
constructor the service uses; the result is passed down explicitly (``create_app(settings)``,
``build_broker(settings)``), never read from a global.
"""

from __future__ import annotations

from maie.config.database import DatabaseSettings, RetentionSettings
from maie.config.diarization import DiarizationSettings
from maie.config.fields import ASR_BACKENDS, DIARIZATION_BACKENDS, MAX_PROMPT_CHARS, RATE_LIMIT_OFF
from maie.config.models import (
    AsrSettings,
    ChunkformerSettings,
    LlmSettings,
    PocketsphinxSettings,
    WhisperSettings,
)
from maie.config.service import (
    AudioSettings,
    AuthSettings,
    BatchSettings,
    ClientSettings,
    FetchSettings,
    LogSettings,
    RateLimitSettings,
    RedisSettings,
    ServerSettings,
    StorageSettings,
    WebhookSettings,
    WorkerSettings,
)
from maie.config.settings import Settings, known_variables
from maie.config.streaming import StreamSettings

__all__ = [
    "ASR_BACKENDS",
    "DIARIZATION_BACKENDS",
    "MAX_PROMPT_CHARS",
    "RATE_LIMIT_OFF",
    "AsrSettings",
    "AudioSettings",
    "AuthSettings",
    "BatchSettings",
    "ChunkformerSettings",
    "ClientSettings",
    "DatabaseSettings",
    "DiarizationSettings",
    "FetchSettings",
    "LlmSettings",
    "LogSettings",
    "PocketsphinxSettings",
    "RateLimitSettings",
    "RedisSettings",
    "RetentionSettings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "StreamSettings",
    "WebhookSettings",
    "WhisperSettings",
    "WorkerSettings",
    "known_variables",
]
