"""``maie up``, ``maie api``, ``maie stream`` and ``maie worker``: the commands that run the service."""

from __future__ import annotations

import click

from maie import __version__
from maie.cli.settings import DEV_KEY_FILE, database_url, load_settings, redis_url, with_keys
from maie.errors import ConfigError

__all__ = ["api", "stream", "up", "worker"]


@click.command()
@click.option("--host", help="API bind address (MAIE_HOST).")
@click.option("--port", type=int, help="API port (MAIE_PORT).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes.")
@click.option(
    "--stream/--no-stream",
    default=True,
    show_default=True,
    help="Run `maie stream` for live transcription (the API relays /v1/stream to it).",
)
def up(host: str | None, port: int | None, workers: int, stream: bool) -> None:
    """Run everything: embedded Redis and PostgreSQL, the API, live streaming and workers.

    MAIE_REDIS_URL and MAIE_DATABASE_URL use external servers instead. The database schema is
    brought up to date before the API and workers start.
    """
    from maie.up.supervisor import Supervisor  # noqa: PLC0415 - keeps `maie --help` fast

    settings = load_settings("up", host=host, port=port)
    generated = not settings.auth.tenants_by_key()
    settings = with_keys(settings, create=True)
    server = settings.server
    url = f"http://{server.host}:{server.port}"
    click.echo(f"MAIE {__version__}: web app on {url}/, API on {url}/v1 (OpenAPI docs at /schema)")
    click.echo(f"OpenAI-compatible API: {url}/openai/v1")
    if stream:
        click.echo(
            f"Live transcription: ws://{server.host}:{server.port}/v1/stream "
            f"(served by `maie stream` on ws://{server.host}:{settings.stream.port}/v1/stream)"
        )
    if generated:
        where = settings.storage.data_dir / DEV_KEY_FILE
        click.echo(
            f"Development API key: {settings.auth.api_keys} (in {where}; set MAIE_API_KEYS in production)"
        )
    try:
        Supervisor(settings, api_keys=settings.auth.api_keys, workers=workers, stream=stream).run()
    except ConfigError as exc:
        raise click.ClickException(exc.detail) from exc


@click.command()
@click.option("--host", help="Bind address (MAIE_HOST).")
@click.option("--port", type=int, help="Port (MAIE_PORT).")
def api(host: str | None, port: int | None) -> None:
    """Run the HTTP API."""
    from maie.api import create_app  # noqa: PLC0415 - keeps `maie --help` fast
    from maie.api.server import run_api  # noqa: PLC0415

    settings = with_keys(load_settings("api", host=host, port=port), create=False)
    app = create_app(settings, redis_url=redis_url(settings), database_url=database_url(settings))
    run_api(app, settings)


@click.command()
@click.option("--host", help="Bind address (MAIE_HOST).")
@click.option("--port", type=int, help="Port (MAIE_STREAM_PORT).")
def stream(host: str | None, port: int | None) -> None:
    """Run live transcription (/v1/stream) on its own: models, recognizers and sessions."""
    from maie.api.server import run_api  # noqa: PLC0415 - keeps `maie --help` fast
    from maie.api.stream import create_stream_app  # noqa: PLC0415

    settings = with_keys(load_settings("stream", host=host), create=False)
    run_api(
        create_stream_app(settings, redis_url=redis_url(settings), database_url=database_url(settings)),
        settings,
        port=port or settings.stream.port,
    )


@click.command()
@click.option(
    "--queues", default="maie.cpu,maie.gpu", show_default=True, help="Comma-separated queues to consume."
)
def worker(queues: str) -> None:
    """Run a worker process."""
    from maie.worker.main import run_worker  # noqa: PLC0415 - keeps `maie --help` fast

    settings = load_settings("worker")
    run_worker(
        settings,
        redis_url(settings),
        database_url(settings),
        queues=[q.strip() for q in queues.split(",") if q.strip()],
    )
