"""The ``maie`` command: ``up`` (everything), ``api``, ``worker``."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import click
import msgspec
import structlog

from maie import __version__
from maie.config import Settings
from maie.errors import ConfigError
from maie.logging import configure_logging

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["main"]

log = structlog.get_logger(__name__)

#: File in MAIE_DATA_DIR holding the development key `maie up` generates when MAIE_API_KEYS is unset.
DEV_KEY_FILE = "dev-api-key"


def _settings(process: str, **overrides: object) -> Settings:
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


def _dev_key(data_dir: Path, *, create: bool) -> str | None:
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


def _with_keys(settings: Settings, *, create: bool) -> Settings:
    if settings.auth.tenants_by_key():
        return settings
    key = _dev_key(settings.storage.data_dir, create=create)
    if key is None:
        msg = (
            "MAIE_API_KEYS is empty: set it (e.g. MAIE_API_KEYS=secret or secret:tenant), "
            "or run `maie up`, which generates a development key"
        )
        raise click.ClickException(msg)
    return msgspec.structs.replace(settings, auth=msgspec.structs.replace(settings.auth, api_keys=key))


def _redis_url(settings: Settings) -> str:
    from maie.redis_server import resolve_redis_url  # noqa: PLC0415 - keeps `maie --help` fast

    try:
        return resolve_redis_url(settings.redis.url, settings.storage.data_dir)
    except ConfigError as exc:
        raise click.ClickException(exc.detail) from exc


@click.group()
@click.version_option(__version__, prog_name="maie")
def main() -> None:
    """MAIE: recordings to transcripts and structured summaries."""


@main.command()
@click.option("--host", help="API bind address (MAIE_HOST).")
@click.option("--port", type=int, help="API port (MAIE_PORT).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes.")
def up(host: str | None, port: int | None, workers: int) -> None:
    """Run everything: embedded Redis (unless MAIE_REDIS_URL is set), the API and workers."""
    from maie.supervisor import Supervisor  # noqa: PLC0415 - keeps `maie --help` fast

    settings = _settings("up", host=host, port=port)
    generated = not settings.auth.tenants_by_key()
    settings = _with_keys(settings, create=True)
    server = settings.server
    click.echo(f"MAIE {__version__}: API on http://{server.host}:{server.port} (OpenAPI docs at /schema)")
    if generated:
        where = settings.storage.data_dir / DEV_KEY_FILE
        click.echo(
            f"Development API key: {settings.auth.api_keys} (in {where}; set MAIE_API_KEYS in production)"
        )
    Supervisor(settings, api_keys=settings.auth.api_keys, workers=workers).run()


@main.command()
@click.option("--host", help="Bind address (MAIE_HOST).")
@click.option("--port", type=int, help="Port (MAIE_PORT).")
def api(host: str | None, port: int | None) -> None:
    """Run the HTTP API."""
    import uvicorn  # noqa: PLC0415 - keeps `maie --help` fast

    from maie.api import create_app  # noqa: PLC0415

    settings = _with_keys(_settings("api", host=host, port=port), create=False)
    app = create_app(settings, redis_url=_redis_url(settings))
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


@main.command()
@click.option(
    "--queues", default="maie.cpu,maie.gpu", show_default=True, help="Comma-separated queues to consume."
)
def worker(queues: str) -> None:
    """Run a worker process."""
    from maie.worker.main import run_worker  # noqa: PLC0415 - keeps `maie --help` fast

    settings = _settings("worker")
    run_worker(settings, _redis_url(settings), queues=[q.strip() for q in queues.split(",") if q.strip()])
