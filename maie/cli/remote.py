"""``maie submit``, ``status``, ``result``, ``search``, ``delete``: commands that talk to a running server."""

from __future__ import annotations

import asyncio
import html
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec

from maie.cli.flags import submission_flags, submission_values
from maie.cli.output import emit, fail, format_option, output_option
from maie.cli.settings import dev_key, load_settings
from maie.errors import MaieError

if TYPE_CHECKING:
    from maie.client import MaieClient
    from maie.client.bulk import Item, Report
    from maie.config import Settings
    from maie.schemas import SearchHit

__all__ = ["delete", "result", "search", "status", "submit"]


def _server(settings: Settings, url: str | None, api_key: str | None) -> tuple[str, str]:
    """Where the server is and which key to send: options, then MAIE_URL/MAIE_API_KEY, then local."""
    host = settings.server.host if settings.server.host not in {"0.0.0.0", "::"} else "127.0.0.1"  # noqa: S104
    base = url or settings.client.url or f"http://{host}:{settings.server.port}"
    key = api_key or settings.client.api_key or next(iter(settings.auth.tenants_by_key()), None)
    key = key or dev_key(settings.storage.data_dir, create=False)
    if not key:
        msg = "no API key: pass --api-key, set MAIE_API_KEY, or run where `maie up` wrote data/dev-api-key"
        raise click.ClickException(msg)
    return base, key


def _client_settings() -> Settings:
    settings = load_settings("client")
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


_url_option = click.option("--url", help="API base URL (MAIE_URL; default http://MAIE_HOST:MAIE_PORT).")
_key_option = click.option("--api-key", help="API key (MAIE_API_KEY; default the local development key).")


def _items(arguments: tuple[str, ...]) -> list[Item]:
    """What ``maie submit`` was given, in order: files, folders and archives, and recordings' URLs."""
    from maie.client.bulk import collect, is_url, url_item  # noqa: PLC0415 - keeps `maie --help` fast

    items: list[Item] = []
    for argument in arguments:
        if is_url(argument):
            items.append(url_item(argument))
            continue
        path = Path(argument)
        if not path.exists():
            msg = f"{argument!r} is neither an existing file or folder nor an http(s):// URL"
            raise click.BadParameter(msg, param_hint="PATHS")
        items += collect([path])
    return items


@click.command()
@click.argument("paths", nargs=-1, required=True)
@submission_flags
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
    paths: tuple[str, ...],
    concurrency: int,
    wait: bool,
    out_dir: Path | None,
    state: Path | None,
    url: str | None,
    api_key: str | None,
    **fields: object,
) -> None:
    """Submit recordings, folders of recordings, archives and recordings' URLs; resumable.

    An argument that starts with http:// or https:// is sent as a URL for the server to fetch
    (a direct link, a link behind redirects or a web page with the recording). Run the same command
    again after a stop: what was submitted already is skipped. The flags before --concurrency are
    the fields of POST /v1/process (docs/api.md).
    """
    from maie.client import AsyncMaieClient, SubmitOptions  # noqa: PLC0415 - keeps `maie --help` fast
    from maie.client.bulk import Ledger  # noqa: PLC0415

    base, key = _server(_client_settings(), url, api_key)
    items = _items(paths)
    if not items:
        raise click.ClickException("no recordings or archives found in the given paths")
    options = msgspec.convert(submission_values(fields), SubmitOptions)
    ledger = Ledger(state or _default_ledger(out_dir))

    async def run() -> Report:
        from rich.progress import Progress  # noqa: PLC0415 - keeps `maie --help` fast

        from maie.client.bulk import submit_all  # noqa: PLC0415

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
        raise fail(exc) from exc
    click.echo(
        f"{report.submitted} submitted, {report.already_submitted} already submitted, "
        f"{report.complete} complete, {report.written} written, {len(report.failed)} failed"
    )
    for label, reason in report.failed:
        click.echo(f"  {label}: {reason}", err=True)
    if report.failed:
        sys.exit(1)


@click.command()
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
            raise fail(exc) from exc


@click.command()
@click.argument("task_id")
@format_option("json is the whole result version.")
@click.option(
    "--version", "version", type=click.IntRange(min=1), help="Result version (default: the latest)."
)
@output_option
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
            raise fail(exc) from exc
    emit(text, output)


def _hit_lines(hit: SearchHit) -> list[str]:
    """A search hit as text: the task, then each matching segment with its time and snippet."""
    name = hit.filename or "(no file name)"
    lines = [f"{hit.task_id}  {hit.submitted_at:%Y-%m-%d %H:%M}  {name}  ({hit.matches} matching)"]
    for segment in hit.segments:
        where = f"{segment.start:8.2f}s" if segment.start is not None else segment.source.rjust(9)
        who = f" [{segment.speaker}]" if segment.speaker else ""
        snippet = segment.snippet.replace("<mark>", "[").replace("</mark>", "]")
        lines.append(f"  {where}{who}  {html.unescape(snippet)}")
    return lines


@click.command()
@click.argument("query")
@click.option("--status", "statuses", help="Only tasks in these statuses (comma-separated).")
@click.option("--after", "submitted_after", help="Only tasks submitted at or after this time (ISO 8601).")
@click.option("--before", "submitted_before", help="Only tasks submitted before this time (ISO 8601).")
@click.option("--template", "template_id", help="Only tasks submitted with this template.")
@click.option("--batch", "batch_id", help="Only tasks of this batch.")
@click.option(
    "--limit", type=click.IntRange(1, 200), default=20, show_default=True, help="Most tasks listed."
)
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
@_url_option
@_key_option
def search(  # noqa: PLR0917 - one parameter per option
    query: str,
    statuses: str | None,
    submitted_after: str | None,
    submitted_before: str | None,
    template_id: str | None,
    batch_id: str | None,
    limit: int,
    as_json: bool,
    url: str | None,
    api_key: str | None,
) -> None:
    """Search your transcripts and summaries: words, "a phrase", or, -word."""
    filters = {
        "status": statuses,
        "submitted_after": submitted_after,
        "submitted_before": submitted_before,
        "template_id": template_id,
        "batch_id": batch_id,
    }
    with _client(url, api_key) as client:
        try:
            page = client.search(query, limit=limit, **{k: v for k, v in filters.items() if v})
        except MaieError as exc:
            raise fail(exc) from exc
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(page), indent=2))
        return
    if not page.hits:
        click.echo("no matches", err=True)
        return
    for hit in page.hits:
        click.echo("\n".join(_hit_lines(hit)))


@click.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option(
    "--batch", "is_batch", is_flag=True, help="The ids are batches: delete each with all its tasks."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_url_option
@_key_option
def delete(
    task_ids: tuple[str, ...], is_batch: bool, yes: bool, url: str | None, api_key: str | None
) -> None:
    """Delete tasks (or batches): records, every result version and audio. Irreversible."""
    what = "batch" if is_batch else "task"
    if not yes:
        click.confirm(f"Delete {len(task_ids)} {what}(s) and all their results?", abort=True)
    failed = False
    with _client(url, api_key) as client:
        for item in task_ids:
            try:
                (client.delete_batch if is_batch else client.delete)(item)
            except MaieError as exc:
                click.echo(f"{item}: {exc.detail}", err=True)
                failed = True
            else:
                click.echo(f"deleted {what} {item}")
    if failed:
        sys.exit(1)
