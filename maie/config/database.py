"""Settings of the system of record: the PostgreSQL server, its connection pools, and retention."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import msgspec

from maie.config.fields import NonNegative, NonNegativeFloat, Positive, PositiveFloat, env_names

__all__ = ["DATABASE_SCHEMES", "DatabaseSettings", "RetentionSettings", "redact_url"]

#: URL schemes MAIE_DATABASE_URL may use (libpq's two, and SQLAlchemy's name for the driver).
DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("DATABASE_")):
    """PostgreSQL, which holds task records, result versions, batches and the search index."""

    #: External PostgreSQL, e.g. ``postgresql://maie:secret@db:5432/maie``; unset means the
    #: embedded server of ``maie up`` (``MAIE_DATA_DIR/postgres/url``).
    url: str | None = None
    #: Connections each process keeps open even when idle.
    pool_min_size: NonNegative = 1
    #: Most connections one process opens (each API or worker process has its own pool).
    pool_max_size: Positive = 10
    #: Seconds a request waits for a free connection (or for the server to come back) before the
    #: store reports itself unavailable (503 with Retry-After in the API; a retry in the worker).
    pool_timeout_s: PositiveFloat = 5.0
    #: Seconds to wait for a new connection to be established (libpq needs at least 2).
    connect_timeout_s: Annotated[int, msgspec.Meta(ge=2, le=300)] = 5
    #: Longest one SQL statement may run, in seconds; 0 lets statements run as long as they take.
    statement_timeout_s: NonNegativeFloat = 30.0
    #: Port of the embedded server of ``maie up`` on 127.0.0.1; 0 picks a free one.
    embedded_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0

    def __post_init__(self) -> None:
        if self.url is not None and urlsplit(self.url).scheme not in DATABASE_SCHEMES:
            msg = f"MAIE_DATABASE_URL must start with postgresql://, got {redact_url(self.url)!r}"
            raise ValueError(msg)
        if self.pool_min_size > self.pool_max_size:
            msg = "MAIE_DATABASE_POOL_MIN_SIZE must not be larger than MAIE_DATABASE_POOL_MAX_SIZE"
            raise ValueError(msg)


class RetentionSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("RETENTION_")):
    """How long finished work is kept."""

    #: Days a task (record, every result version, artifacts, audio) is kept after it was
    #: submitted; unset keeps everything until it is deleted.
    days: Positive | None = None
    #: Seconds between two purges of tasks older than MAIE_RETENTION_DAYS.
    interval_s: Positive = 3600
