"""`Settings`: every concern's Struct, built once from the environment and an optional .env."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from dotenv import dotenv_values

from maie.config.database import DatabaseSettings, RetentionSettings, redact_url
from maie.config.diarization import DiarizationSettings
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
from maie.config.streaming import StreamSettings
from maie.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "Settings",
    "known_variables",
]


#: Words accepted for booleans besides msgspec's own ``true/false/1/0``.
_BOOL_WORDS = {"yes": "true", "on": "true", "no": "false", "off": "false"}


_GROUPS: dict[str, type[msgspec.Struct]] = {
    "server": ServerSettings,
    "redis": RedisSettings,
    "database": DatabaseSettings,
    "storage": StorageSettings,
    "retention": RetentionSettings,
    "audio": AudioSettings,
    "asr": AsrSettings,
    "whisper": WhisperSettings,
    "pocketsphinx": PocketsphinxSettings,
    "chunkformer": ChunkformerSettings,
    "diarization": DiarizationSettings,
    "llm": LlmSettings,
    "worker": WorkerSettings,
    "auth": AuthSettings,
    "log": LogSettings,
    "rate_limit": RateLimitSettings,
    "webhook": WebhookSettings,
    "fetch": FetchSettings,
    "batch": BatchSettings,
    "client": ClientSettings,
    "stream": StreamSettings,
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
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    retention: RetentionSettings = msgspec.field(default_factory=RetentionSettings)
    audio: AudioSettings = msgspec.field(default_factory=AudioSettings)
    asr: AsrSettings = msgspec.field(default_factory=AsrSettings)
    whisper: WhisperSettings = msgspec.field(default_factory=WhisperSettings)
    pocketsphinx: PocketsphinxSettings = msgspec.field(default_factory=PocketsphinxSettings)
    chunkformer: ChunkformerSettings = msgspec.field(default_factory=ChunkformerSettings)
    diarization: DiarizationSettings = msgspec.field(default_factory=DiarizationSettings)
    llm: LlmSettings = msgspec.field(default_factory=LlmSettings)
    worker: WorkerSettings = msgspec.field(default_factory=WorkerSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    rate_limit: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    webhook: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    fetch: FetchSettings = msgspec.field(default_factory=FetchSettings)
    batch: BatchSettings = msgspec.field(default_factory=BatchSettings)
    client: ClientSettings = msgspec.field(default_factory=ClientSettings)
    stream: StreamSettings = msgspec.field(default_factory=StreamSettings)
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
        database = data.get("database", {})
        if database.get("MAIE_DATABASE_URL"):
            database["MAIE_DATABASE_URL"] = redact_url(database["MAIE_DATABASE_URL"])
        diarization = data.get("diarization", {})
        if diarization.get("MAIE_DIARIZATION_PYANNOTE_TOKEN"):
            diarization["MAIE_DIARIZATION_PYANNOTE_TOKEN"] = "***"  # noqa: S105 - the mask
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
