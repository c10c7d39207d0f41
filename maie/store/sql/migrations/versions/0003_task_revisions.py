"""Task revisions: a counter each write of a record increments, so caches can tell newer from older.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 13:40:00.000000

A constant default makes PostgreSQL add the column without rewriting the table: every stored
task starts at revision 1.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``tasks.revision``."""
    op.add_column(
        "tasks", sa.Column("revision", sa.BigInteger(), server_default=sa.text("1"), nullable=False)
    )


def downgrade() -> None:
    """Undo 0003."""
    op.drop_column("tasks", "revision")
