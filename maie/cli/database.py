"""``maie db``: the schema of the system of record (``upgrade``, ``current``).

Both work on ``MAIE_DATABASE_URL``, else on the embedded PostgreSQL of this data folder: the one
``maie up`` runs, or (when none runs) one started for the command and stopped after it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import click

from maie.cli.settings import load_settings
from maie.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from maie.config import Settings

__all__ = ["db"]


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[str]:
    """The URL of the database to work on, with an embedded server started for the command if needed."""
    from maie.up.postgres import EmbeddedPostgres, read_embedded_url  # noqa: PLC0415 - keeps --help fast

    if settings.database.url:
        yield settings.database.url
        return
    folder = settings.storage.data_dir / "postgres"
    running = read_embedded_url(folder)
    if running:
        yield running
        return
    server = EmbeddedPostgres(folder, port=settings.database.embedded_port or None)
    try:
        url = server.start()
    except ConfigError as exc:
        raise click.ClickException(exc.detail) from exc
    try:
        yield url
    finally:
        server.stop()


@click.group()
def db() -> None:
    """The database schema: upgrade it, or show where it is."""


@db.command()
def upgrade() -> None:
    """Apply every migration this version of MAIE has (one transaction: all or nothing)."""
    import sqlalchemy as sa  # noqa: PLC0415 - keeps `maie --help` fast

    from maie.config.database import redact_url  # noqa: PLC0415
    from maie.store.sql import current_revision, head_revision  # noqa: PLC0415
    from maie.store.sql import upgrade as run_upgrade  # noqa: PLC0415

    settings = load_settings("db")
    with _database(settings) as url:
        try:
            before = current_revision(url)
            after = run_upgrade(url)
        except sa.exc.SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            msg = f"the upgrade of {redact_url(url)} failed and changed nothing: {reason}"
            raise click.ClickException(msg) from exc
    if before == after:
        click.echo(f"{redact_url(url)}: already at revision {after} (head {head_revision()})")
    else:
        click.echo(f"{redact_url(url)}: upgraded from {before or 'an empty database'} to {after}")


@db.command()
@click.option("--check", is_flag=True, help="Exit with status 1 when the schema is not current.")
def current(*, check: bool) -> None:
    """Print the schema revision of the database and whether it is current."""
    import sqlalchemy as sa  # noqa: PLC0415 - keeps `maie --help` fast

    from maie.config.database import redact_url  # noqa: PLC0415
    from maie.store.sql import current_revision, head_revision  # noqa: PLC0415

    settings = load_settings("db")
    with _database(settings) as url:
        try:
            revision = current_revision(url)
        except sa.exc.OperationalError as exc:
            msg = f"PostgreSQL at {redact_url(url)} cannot be reached: {exc.orig or exc}"
            raise click.ClickException(msg) from exc
    head = head_revision()
    state = "up to date" if revision == head else "needs `maie db upgrade`"
    click.echo(f"{redact_url(url)}: revision {revision or 'none'} (head {head}, {state})")
    if check and revision != head:
        raise SystemExit(1)
