"""The ``maie`` command.

``up`` (everything), ``api`` and ``worker`` run the service; ``submit``, ``status`` and ``result``
talk to a running one; ``transcribe`` runs the pipeline in this process with no server at all.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec
import structlog

from maie import __version__
from maie.config import Settings
from maie.errors import ConfigError, MaieError
from maie.logging import configure_logging

if TYPE_CHECKING:
    from maie.client import MaieClient
    from maie.submitter import Report

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
    from maie.api import create_app  # noqa: PLC0415 - keeps `maie --help` fast
    from maie.api.server import run_api  # noqa: PLC0415

    settings = _with_keys(_settings("api", host=host, port=port), create=False)
    run_api(create_app(settings, redis_url=_redis_url(settings)), settings)


@main.command()
@click.option(
    "--queues", default="maie.cpu,maie.gpu", show_default=True, help="Comma-separated queues to consume."
)
def worker(queues: str) -> None:
    """Run a worker process."""
    from maie.worker.main import run_worker  # noqa: PLC0415 - keeps `maie --help` fast

    settings = _settings("worker")
    run_worker(settings, _redis_url(settings), queues=[q.strip() for q in queues.split(",") if q.strip()])


# --- Client commands: talk to a running server -------------------------------------------------

#: Formats of ``maie result`` and ``maie transcribe``.
FORMATS = ("txt", "srt", "vtt", "json")


def _server(settings: Settings, url: str | None, api_key: str | None) -> tuple[str, str]:
    """Where the server is and which key to send: options, then MAIE_URL/MAIE_API_KEY, then local."""
    host = settings.server.host if settings.server.host not in {"0.0.0.0", "::"} else "127.0.0.1"  # noqa: S104
    base = url or settings.client.url or f"http://{host}:{settings.server.port}"
    key = api_key or settings.client.api_key or next(iter(settings.auth.tenants_by_key()), None)
    key = key or _dev_key(settings.storage.data_dir, create=False)
    if not key:
        msg = "no API key: pass --api-key, set MAIE_API_KEY, or run where `maie up` wrote data/dev-api-key"
        raise click.ClickException(msg)
    return base, key


def _client_settings() -> Settings:
    settings = _settings("client")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    return settings


def _client(url: str | None, api_key: str | None) -> MaieClient:
    from maie.client import MaieClient  # noqa: PLC0415 - keeps `maie --help` fast

    base, key = _server(_client_settings(), url, api_key)
    return MaieClient(base, key)


def _default_ledger(out_dir: Path | None) -> Path:
    if out_dir is not None:
        return out_dir / ".maie-submissions.jsonl"
    return Path(click.get_app_dir("maie")) / "submissions.jsonl"


def _fail(exc: MaieError) -> click.ClickException:
    return click.ClickException(exc.detail)


_url_option = click.option("--url", help="API base URL (MAIE_URL; default http://MAIE_HOST:MAIE_PORT).")
_key_option = click.option("--api-key", help="API key (MAIE_API_KEY; default the local development key).")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--features", help="Comma-separated features (default: the server's, clean_transcript,summary)."
)
@click.option("--template-id", help="Summary template (with the summary feature).")
@click.option("--asr-backend", help="ASR backend (see GET /v1/models).")
@click.option("--language", help="ISO 639-1 code of the spoken language (default: detect).")
@click.option("--word-timestamps/--no-word-timestamps", default=None, help="Word-level timestamps.")
@click.option("--callback-url", help="Webhook each task calls when it finishes.")
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=4, show_default=True, help="Uploads at once."
)
@click.option("--wait", is_flag=True, help="Wait until every task has finished.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write results here (implies --wait).",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ledger of submissions (default: OUT/.maie-submissions.jsonl, else the user config folder).",
)
@_url_option
@_key_option
def submit(  # noqa: PLR0917 - one parameter per option
    paths: tuple[Path, ...],
    features: str | None,
    template_id: str | None,
    asr_backend: str | None,
    language: str | None,
    word_timestamps: bool | None,
    callback_url: str | None,
    concurrency: int,
    wait: bool,
    out_dir: Path | None,
    state: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Submit recordings, folders of recordings and archives; resumable (run it again after a stop)."""
    from maie.client import AsyncMaieClient  # noqa: PLC0415 - keeps `maie --help` fast
    from maie.client._http import SubmitOptions  # noqa: PLC0415
    from maie.submitter import Ledger, collect  # noqa: PLC0415

    base, key = _server(_client_settings(), url, api_key)
    items = collect(list(paths))
    if not items:
        raise click.ClickException("no recordings or archives found in the given paths")
    options = SubmitOptions(
        features=tuple(f.strip() for f in features.split(",") if f.strip()) if features else None,
        template_id=template_id,
        asr_backend=asr_backend,
        language=language,
        word_timestamps=word_timestamps,
        callback_url=callback_url,
    )
    ledger = Ledger(state or _default_ledger(out_dir))

    async def run() -> Report:
        from rich.progress import Progress  # noqa: PLC0415 - keeps `maie --help` fast

        from maie.submitter import submit_all  # noqa: PLC0415

        async with AsyncMaieClient(base, key) as client:
            with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
                bar = progress.add_task("processing" if wait or out_dir else "submitting", total=len(items))
                return await submit_all(
                    client,
                    items,
                    options,
                    server=base,
                    ledger=ledger,
                    concurrency=concurrency,
                    out_dir=out_dir,
                    wait=wait,
                    advance=lambda: progress.advance(bar),
                )

    try:
        report = asyncio.run(run())
    except MaieError as exc:
        raise _fail(exc) from exc
    click.echo(
        f"{report.submitted} submitted, {report.already_submitted} already submitted, "
        f"{report.complete} complete, {report.written} written, {len(report.failed)} failed"
    )
    for label, reason in report.failed:
        click.echo(f"  {label}: {reason}", err=True)
    if report.failed:
        sys.exit(1)


@main.command()
@click.argument("task_id")
@click.option("--watch", is_flag=True, help="Print each change until the task finishes (server-sent events).")
@_url_option
@_key_option
def status(task_id: str, watch: bool, url: str | None, api_key: str | None) -> None:
    """Print a task's status as JSON."""
    with _client(url, api_key) as client:
        try:
            if not watch:
                click.echo(msgspec.json.format(msgspec.json.encode(client.status(task_id)), indent=2))
                return
            for change in client.events(task_id):
                click.echo(msgspec.json.encode(change))
        except MaieError as exc:
            raise _fail(exc) from exc


@main.command()
@click.argument("task_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="txt",
    show_default=True,
    help="json is the whole result version.",
)
@click.option(
    "--version", "version", type=click.IntRange(min=1), help="Result version (default: the latest)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@_url_option
@_key_option
def result(  # noqa: PLR0917 - one parameter per option
    task_id: str, fmt: str, version: int | None, output: Path | None, url: str | None, api_key: str | None
) -> None:
    """Print a task's result: transcript as txt, srt or vtt, or the whole result version as json."""
    with _client(url, api_key) as client:
        try:
            if fmt == "json":
                text = msgspec.json.format(
                    msgspec.json.encode(client.result(task_id, version)), indent=2
                ).decode()
            else:
                text = client.transcript(task_id, fmt, version=version)
        except MaieError as exc:
            raise _fail(exc) from exc
    _emit(text, output)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="txt",
    show_default=True,
    help="json is the whole result.",
)
@click.option("--language", help="ISO 639-1 code of the spoken language (default: detect).")
@click.option("--word-timestamps/--no-word-timestamps", default=None, help="Word-level timestamps.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
def transcribe(
    file: Path, fmt: str, language: str | None, word_timestamps: bool | None, output: Path | None
) -> None:
    """Transcribe FILE in this process (no server): the configured ASR backend, MAIE_* settings."""
    from maie.offline import transcribe_file  # noqa: PLC0415 - keeps `maie --help` fast
    from maie.transcripts import ExportFormat, render  # noqa: PLC0415

    settings = _settings("transcribe")
    try:
        done = transcribe_file(file, settings, language=language, word_timestamps=word_timestamps)
    except MaieError as exc:
        raise _fail(exc) from exc
    if fmt == "json":
        text = msgspec.json.format(msgspec.json.encode(done), indent=2).decode()
    else:
        text = render(done, ExportFormat(fmt), task_id=file.name).decode()
    _emit(text, output)


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")
