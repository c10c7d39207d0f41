"""Queue slots in the system of record: admission counts unfinished tasks and slots in one snapshot.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08 10:02:41.118302
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``admission_slots``."""
    op.create_table(
        "admission_slots",
        sa.Column("slot_id", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slot_id", name=op.f("admission_slots_pkey")),
    )


def downgrade() -> None:
    """Undo 0002."""
    op.drop_table("admission_slots")
