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

from maie.store.sql.database import sqlalchemy_url

__all__ = ["SCRIPTS", "current_revision", "head_revision", "is_current", "upgrade"]

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
