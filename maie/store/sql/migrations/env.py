"""Alembic environment: runs the migrations on the URL that :mod:`maie.store.sql.migrate` hands over.

Every run is one transaction (PostgreSQL DDL is transactional), so a migration that fails leaves
the schema exactly as it was before the run, earlier migrations of the same run included. An
advisory lock makes concurrent upgrades (two ``maie up`` starting at once) take turns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from maie.store.sql.schema import metadata

#: Key of the advisory lock held while migrating (any constant that other software will not use).
MIGRATION_LOCK = 0x6D616965  # "maie"


def run_offline() -> None:
    """Write the SQL to stdout instead of running it (``--sql``), for a DBA to apply."""
    context.configure(
        url=context.config.attributes["url"],
        target_metadata=metadata,
        literal_binds=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate over one connection, in one transaction, under the migration lock."""
    engine = sa.create_engine(context.config.attributes["url"], poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            transactional_ddl=True,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
