"""What every ``maie`` command starts from: the settings, the API keys, the Redis and PostgreSQL to use."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import click
import msgspec
import structlog

from maie.config import Settings
from maie.errors import ConfigError
from maie.logging import configure_logging

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DEV_KEY_FILE", "database_url", "dev_key", "load_settings", "redis_url", "with_keys"]

log = structlog.get_logger(__name__)

#: File in MAIE_DATA_DIR holding the development key `maie up` generates when MAIE_API_KEYS is unset.
DEV_KEY_FILE = "dev-api-key"


def load_settings(process: str, **overrides: object) -> Settings:
    """``Settings.from_env()`` with the server options given on the command line, logging configured.

    Raises:
        click.ClickException: if the settings are invalid (the message says which and why).
    """
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(exc.detail) from exc
    server = {k: v for k, v in overrides.items() if v is not None}
    if server:
        settings = msgspec.structs.replace(
            settings, server=msgspec.structs.replace(settings.server, **server)
        )
    configure_logging(settings.log, process=process)
    for name in settings.unknown_variables:
        log.warning("config.unknown_variable", variable=name, hint="not a MAIE setting; check the spelling")
    return settings


def dev_key(data_dir: Path, *, create: bool) -> str | None:
    """The development API key kept in ``data_dir``, made (with ``create``) when there is none."""
    path = data_dir / DEV_KEY_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip() or None
    if not create:
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    path.write_text(key + "\n", encoding="utf-8")
    path.chmod(0o600)
    return key


def with_keys(settings: Settings, *, create: bool) -> Settings:
    """``settings`` with API keys: MAIE_API_KEYS, else the development key.

    Raises:
        click.ClickException: if there is neither.
    """
    if settings.auth.tenants_by_key():
        return settings
    key = dev_key(settings.storage.data_dir, create=create)
    if key is None:
        msg = (
            "MAIE_API_KEYS is empty: set it (e.g. MAIE_API_KEYS=secret or secret:tenant), "
            "or run `maie up`, which generates a development key"
        )
        raise click.ClickException(msg)
    return msgspec.structs.replace(settings, auth=msgspec.structs.replace(settings.auth, api_keys=key))


def redis_url(settings: Settings) -> str:
    """MAIE_REDIS_URL, else the embedded Redis that `maie up` runs for this data folder.

    Raises:
        click.ClickException: if there is neither.
    """
    from maie.up.redis import resolve_redis_url  # noqa: PLC0415 - keeps `maie --help` fast

    try:
        return resolve_redis_url(settings.redis.url, settings.storage.data_dir)
    except ConfigError as exc:
        raise click.ClickException(exc.detail) from exc


def database_url(settings: Settings, *, check_schema: bool = True) -> str:
    """MAIE_DATABASE_URL, else the embedded PostgreSQL that `maie up` runs for this data folder.

    Args:
        settings: The process's settings.
        check_schema: Refuse a database whose schema is not this version's (``maie api`` and
            ``maie worker`` never run on one; ``maie db`` commands look at it first).

    Raises:
        click.ClickException: if there is neither, or the schema is not current (the message says
            to run ``maie db upgrade``).
    """
    from maie.store.sql import require_current  # noqa: PLC0415 - keeps `maie --help` fast
    from maie.up.postgres import resolve_database_url  # noqa: PLC0415

    try:
        url = resolve_database_url(settings.database.url, settings.storage.data_dir)
        if check_schema:
            require_current(url)
    except ConfigError as exc:
        raise click.ClickException(exc.detail) from exc
    return url
