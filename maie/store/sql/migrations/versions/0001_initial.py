"""Initial schema: tasks, stages, artifacts, result versions, batches, claims, search.

Revision ID: 0001
Revises:
Create Date: 2026-12-01 09:14:02.625128
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: A tsvector plus a lexeme "a b" for every two lexemes a, b at adjacent positions, so that a
#: phrase is looked up in the GIN index by its word pairs (rare) rather than its words (common).
PAIRS_FUNCTION = """
CREATE FUNCTION maie_with_pairs(document tsvector) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN document || coalesce((
    SELECT array_to_tsvector(array_agg(DISTINCT a.lexeme || ' ' || b.lexeme))
    FROM (SELECT lexeme, unnest(positions) AS position FROM unnest(document)) a
    JOIN (SELECT lexeme, unnest(positions) AS position FROM unnest(document)) b ON b.position = a.position + 1
), ''::tsvector)
"""

IMMUTABLE_FUNCTION = """
CREATE FUNCTION result_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'result version % of task % is immutable', OLD.version, OLD.task_id
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""


def upgrade() -> None:
    """Initial schema: tasks, stages, artifacts, result versions, batches, claims, search."""
    op.create_table(
        "batches",
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("batches_pkey")),
    )
    op.create_index(op.f("batches_created_at_idx"), "batches", ["created_at"], unique=False)
    op.create_index(op.f("batches_tenant_created_at_idx"), "batches", ["tenant", "created_at"], unique=False)
    op.create_table(
        "idempotency_claims",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("idempotency_claims_pkey")),
    )
    op.create_index(
        op.f("idempotency_claims_expires_at_idx"), "idempotency_claims", ["expires_at"], unique=False
    )
    op.create_table(
        "search_configs",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("config", postgresql.REGCONFIG(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "config", name=op.f("search_configs_pkey")),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("batch_id", sa.Text(), nullable=True),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("template_id", sa.Text(), nullable=True),
        sa.Column("language", sa.Text(), nullable=True),
        sa.Column("result_version", sa.Integer(), nullable=True),
        sa.Column("record", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint(
            "status IN ('PENDING', 'PREPROCESSING', 'PROCESSING_ASR', 'PROCESSING_LLM', "
            "'COMPLETE', 'FAILED')",
            name=op.f("tasks_status_check"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.batch_id"], name=op.f("tasks_batch_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("tasks_pkey")),
    )
    op.create_index(
        op.f("tasks_batch_id_submitted_at_task_id_idx"),
        "tasks",
        ["batch_id", "submitted_at", "task_id"],
        unique=False,
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )
    op.create_index(op.f("tasks_submitted_at_idx"), "tasks", ["submitted_at"], unique=False)
    op.create_index(
        op.f("tasks_tenant_status_submitted_at_task_id_idx"),
        "tasks",
        ["tenant", "status", "submitted_at", "task_id"],
        unique=False,
    )
    op.create_index(
        op.f("tasks_tenant_submitted_at_task_id_idx"),
        "tasks",
        ["tenant", "submitted_at", "task_id"],
        unique=False,
    )
    op.create_index(
        op.f("tasks_tenant_template_id_submitted_at_task_id_idx"),
        "tasks",
        ["tenant", "template_id", "submitted_at", "task_id"],
        unique=False,
        postgresql_where=sa.text("template_id IS NOT NULL"),
    )
    op.create_index(
        "tasks_unfinished_idx",
        "tasks",
        ["submitted_at"],
        unique=False,
        postgresql_where=sa.text("status NOT IN ('COMPLETE', 'FAILED')"),
    )
    op.create_table(
        "artifacts",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.task_id"], name=op.f("artifacts_task_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "stage", name=op.f("artifacts_pkey")),
    )
    op.create_table(
        "result_versions",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("template_id", sa.Text(), nullable=True),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("result_versions_version_check")),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.task_id"], name=op.f("result_versions_task_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "version", name=op.f("result_versions_pkey")),
    )
    # Before search_texts, whose generated column calls it.
    op.execute(PAIRS_FUNCTION)
    op.create_table(
        "search_texts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=True),
        sa.Column("start_s", sa.Double(), nullable=True),
        sa.Column("end_s", sa.Double(), nullable=True),
        sa.Column("speaker", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("config", postgresql.REGCONFIG(), nullable=False),
        sa.Column(
            "document",
            postgresql.TSVECTOR(),
            sa.Computed("maie_with_pairs(to_tsvector(config, body))", persisted=True),
            nullable=False,
        ),
        sa.CheckConstraint("source IN ('raw', 'clean', 'summary')", name=op.f("search_texts_source_check")),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.task_id"], name=op.f("search_texts_task_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("search_texts_pkey")),
    )
    # Stored versions never change: a trigger refuses any UPDATE, whoever sends it.
    op.execute(IMMUTABLE_FUNCTION)
    op.execute(
        "CREATE TRIGGER result_versions_immutable BEFORE UPDATE ON result_versions "
        "FOR EACH ROW EXECUTE FUNCTION result_versions_immutable()"
    )
    op.create_index(
        op.f("search_texts_document_idx"), "search_texts", ["document"], unique=False, postgresql_using="gin"
    )
    op.create_index(op.f("search_texts_task_id_idx"), "search_texts", ["task_id"], unique=False)
    op.create_table(
        "search_documents",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("config", postgresql.REGCONFIG(), nullable=False),
        sa.Column("document", postgresql.TSVECTOR(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.task_id"], name=op.f("search_documents_task_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("search_documents_pkey")),
    )
    op.create_index(
        op.f("search_documents_document_idx"),
        "search_documents",
        ["document"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(op.f("search_documents_tenant_idx"), "search_documents", ["tenant"], unique=False)
    op.create_table(
        "task_stages",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("stage_key", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("template_id", sa.Text(), nullable=True),
        sa.Column("result_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.task_id"], name=op.f("task_stages_task_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "stage_key", name=op.f("task_stages_pkey")),
    )
    op.create_index(op.f("task_stages_name_status_idx"), "task_stages", ["name", "status"], unique=False)
    op.create_table(
        "webhook_deliveries",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.task_id"], name=op.f("webhook_deliveries_task_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "event_id", name=op.f("webhook_deliveries_pkey")),
    )
    op.create_index(
        op.f("webhook_deliveries_state_idx"),
        "webhook_deliveries",
        ["state"],
        unique=False,
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    """Undo 0001."""
    op.drop_index(
        op.f("webhook_deliveries_state_idx"),
        table_name="webhook_deliveries",
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.drop_table("webhook_deliveries")
    op.drop_index(op.f("task_stages_name_status_idx"), table_name="task_stages")
    op.drop_table("task_stages")
    op.drop_index(op.f("search_texts_task_id_idx"), table_name="search_texts")
    op.drop_index(op.f("search_texts_document_idx"), table_name="search_texts", postgresql_using="gin")
    op.drop_table("search_texts")
    op.execute("DROP FUNCTION maie_with_pairs(tsvector)")
    op.drop_index(op.f("search_documents_tenant_idx"), table_name="search_documents")
    op.drop_index(
        op.f("search_documents_document_idx"), table_name="search_documents", postgresql_using="gin"
    )
    op.drop_table("search_documents")
    op.drop_table("result_versions")
    op.execute("DROP FUNCTION result_versions_immutable()")
    op.drop_table("artifacts")
    op.drop_index(
        "tasks_unfinished_idx",
        table_name="tasks",
        postgresql_where=sa.text("status NOT IN ('COMPLETE', 'FAILED')"),
    )
    op.drop_index(
        op.f("tasks_tenant_template_id_submitted_at_task_id_idx"),
        table_name="tasks",
        postgresql_where=sa.text("template_id IS NOT NULL"),
    )
    op.drop_index(op.f("tasks_tenant_submitted_at_task_id_idx"), table_name="tasks")
    op.drop_index(op.f("tasks_tenant_status_submitted_at_task_id_idx"), table_name="tasks")
    op.drop_index(op.f("tasks_submitted_at_idx"), table_name="tasks")
    op.drop_index(
        op.f("tasks_batch_id_submitted_at_task_id_idx"),
        table_name="tasks",
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )
    op.drop_table("tasks")
    op.drop_table("search_configs")
    op.drop_index(op.f("idempotency_claims_expires_at_idx"), table_name="idempotency_claims")
    op.drop_table("idempotency_claims")
    op.drop_index(op.f("batches_tenant_created_at_idx"), table_name="batches")
    op.drop_index(op.f("batches_created_at_idx"), table_name="batches")
    op.drop_table("batches")
