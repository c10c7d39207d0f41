"""Schema migrations, run from code: ``maie up`` and ``maie db upgrade`` call :func:`upgrade`.

The Alembic scripts ship inside the package (``maie/store/sql/migrations``), so an installed wheel
can migrate its database without a checkout or an ``alembic.ini``. Each run is one transaction: a
migration that fails leaves the database as it was.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from maie.config.database import redact_url
from maie.errors import ConfigError
from maie.store.sql.database import sqlalchemy_url

__all__ = ["SCRIPTS", "current_revision", "head_revision", "is_current", "require_current", "upgrade"]

#: The migrations shipped with MAIE.
SCRIPTS = Path(__file__).with_name("migrations")


def _config(url: str | None, scripts: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(scripts))
    # Passed as an attribute, not an option: options go through ConfigParser's % interpolation.
    if url is not None:
        config.attributes["url"] = sqlalchemy_url(url)
    return config


def upgrade(url: str, revision: str = "head", *, scripts: Path = SCRIPTS) -> str | None:
    """Bring the database at ``url`` to ``revision`` (the newest by default).

    Args:
        url: The database (``MAIE_DATABASE_URL`` or the embedded server's).
        revision: Target revision.
        scripts: Folder of the migration scripts (tests use a copy with extra ones).

    Returns:
        The revision the database is at afterwards.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: if a migration fails (nothing of the run is kept).
    """
    command.upgrade(_config(url, scripts), revision)
    return current_revision(url)


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at, or None before the first migration."""
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision(scripts: Path = SCRIPTS) -> str | None:
    """The newest revision this version of MAIE knows."""
    return ScriptDirectory.from_config(_config(None, scripts)).get_current_head()


def is_current(url: str) -> bool:
    """Whether the database at ``url`` has every migration of this version of MAIE."""
    return current_revision(url) == head_revision()


def require_current(url: str) -> None:
    """Refuse to run against a database whose schema is not the one this version of MAIE needs.

    ``maie api`` and ``maie worker`` call it before they start: an older schema would fail
    requests one by one, a newer one (MAIE was downgraded) could be written wrongly.

    Raises:
        ConfigError: saying which revision the database is at, which is needed, and what to run.
    """
    try:
        current = current_revision(url)
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ConfigError(f"PostgreSQL at {redact_url(url)} cannot be reached: {reason}") from exc
    head = head_revision()
    if current == head:
        return
    if current is None:
        state = "has no MAIE schema yet"
    elif current in _known_revisions():
        state = f"is at schema revision {current}"
    else:
        raise ConfigError(
            f"the database at {redact_url(url)} is at schema revision {current}, which this version of "
            f"MAIE does not know (it needs {head}): it was migrated by a newer MAIE; run that version"
        )
    raise ConfigError(
        f"the database at {redact_url(url)} {state}; this version of MAIE needs revision {head}: "
        "run `maie db upgrade` (`maie up` does it when it starts)"
    )


def _known_revisions(scripts: Path = SCRIPTS) -> set[str]:
    return {
        script.revision for script in ScriptDirectory.from_config(_config(None, scripts)).walk_revisions()
    }
