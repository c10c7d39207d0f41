"""Migrations against a real PostgreSQL: they build what the schema module describes, all or nothing."""

from __future__ import annotations

import shutil

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from maie.store.sql import current_revision, head_revision, is_current, upgrade
from maie.store.sql.database import sqlalchemy_url
from maie.store.sql.migrate import SCRIPTS
from maie.store.sql.schema import metadata
from tests.fixtures.postgres import drop_database, fresh_database

FAILING = '''"""A migration that breaks halfway (test only)."""

import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_made", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("tasks", sa.Column("half_made", sa.Text))
    op.execute("SELECT no_such_function()")


def downgrade() -> None:
    pass
'''


@pytest.fixture
def empty_database(postgres_server):
    url = fresh_database(postgres_server, template="template0")
    yield url
    drop_database(postgres_server, url)


def _schema(url: str) -> dict[str, list[str]]:
    """Every table of the public schema with its columns, and the alembic revision."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ).fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


@pytest.fixture
def failing_scripts(tmp_path):
    scripts = tmp_path / "migrations"
    shutil.copytree(SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_failing.py").write_text(
        FAILING.replace("{head}", head_revision()), encoding="utf-8"
    )
    return scripts


class TestUpgrade:
    """What `maie up` and `maie db upgrade` will run."""

    def test_empty_database_goes_to_head(self, empty_database):
        assert current_revision(empty_database) is None
        assert not is_current(empty_database)
        assert upgrade(empty_database) == head_revision()
        assert is_current(empty_database)
        assert {"tasks", "result_versions", "search_texts", "alembic_version"} <= set(_schema(empty_database))

    def test_upgrading_again_changes_nothing(self, database):
        before = _schema(database)
        assert upgrade(database) == head_revision()
        assert _schema(database) == before

    def test_migrations_build_what_the_schema_module_describes(self, database):
        """A model change without its migration (or the reverse) fails here."""
        engine = sa.create_engine(sqlalchemy_url(database), poolclass=sa.pool.NullPool)
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
        engine.dispose()
        assert diff == []

    def test_stored_versions_cannot_be_updated(self, database):
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO tasks (task_id, tenant, status, submitted_at, record) "
                "VALUES ('t1', 'acme', 'PENDING', now(), '{}')"
            )
            conn.execute(
                "INSERT INTO result_versions (task_id, version, kind, created_at, body) "
                "VALUES ('t1', 1, 'pipeline', now(), '{}')"
            )
            with pytest.raises(psycopg.errors.IntegrityError, match="immutable"):
                conn.execute("UPDATE result_versions SET kind = 'other'")


class TestFailingMigration:
    """A migration that fails leaves the database exactly as it was before the run."""

    def test_failure_after_head_keeps_the_schema(self, database, failing_scripts):
        before = _schema(database)
        with pytest.raises(sa.exc.ProgrammingError, match="no_such_function"):
            upgrade(database, scripts=failing_scripts)
        assert _schema(database) == before
        assert current_revision(database) == head_revision()

    def test_failure_in_a_run_from_empty_keeps_it_empty(self, empty_database, failing_scripts):
        """Every migration of a run is one transaction: the real ones are rolled back with the failing one."""
        with pytest.raises(sa.exc.ProgrammingError, match="no_such_function"):
            upgrade(empty_database, scripts=failing_scripts)
        assert _schema(empty_database) == {}
        assert current_revision(empty_database) is None
