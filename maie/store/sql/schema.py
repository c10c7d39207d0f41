"""The tables of the system of record, as SQLAlchemy Core metadata (what the migrations build).

Each record is kept whole as JSONB in the encoding of its contract Struct (:mod:`maie.schemas`),
so the API and the worker read one row and decode it as they decoded the Redis value; the
columns beside it are the ones queries, constraints and indexes need. ``task_stages`` and
``webhook_deliveries`` are kept in step with the record by every write, in the same transaction,
for queries across tasks (which stage fails, which deliveries are pending).

Migrations are written by hand in ``migrations/versions``; a test compares them with this module.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, REGCONFIG, TSVECTOR

__all__ = [
    "TERMINAL_STATUSES",
    "admission_slots",
    "artifacts",
    "batches",
    "idempotency_claims",
    "metadata",
    "result_versions",
    "search_configs",
    "search_documents",
    "search_texts",
    "task_stages",
    "tasks",
    "webhook_deliveries",
]

#: Statuses after which a task changes no more (``TaskStatus.terminal``).
TERMINAL_STATUSES = ("COMPLETE", "FAILED")
_STATUSES = ("PENDING", "PREPROCESSING", "PROCESSING_ASR", "PROCESSING_LLM", *TERMINAL_STATUSES)
_UNFINISHED = sa.text("status NOT IN ('COMPLETE', 'FAILED')")

metadata = sa.MetaData(
    naming_convention={
        "pk": "%(table_name)s_pkey",
        "fk": "%(table_name)s_%(column_0_name)s_fkey",
        "ck": "%(table_name)s_%(constraint_name)s_check",
        "ix": "%(table_name)s_%(column_0_N_name)s_idx",
        "uq": "%(table_name)s_%(column_0_N_name)s_key",
    }
)


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _task_ref() -> sa.Column[str]:
    return sa.Column(
        "task_id",
        sa.Text,
        sa.ForeignKey("tasks.task_id", ondelete="CASCADE"),
        primary_key=True,
        nullable=False,
    )


batches = sa.Table(
    "batches",
    metadata,
    sa.Column("batch_id", sa.Text, primary_key=True),
    sa.Column("tenant", sa.Text, nullable=False),
    sa.Column("created_at", _when(), nullable=False),
    sa.Column("record", JSONB, nullable=False),
    sa.Index(None, "tenant", "created_at"),
    sa.Index(None, "created_at"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("task_id", sa.Text, primary_key=True),
    sa.Column("tenant", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("submitted_at", _when(), nullable=False),
    sa.Column("updated_at", _when(), nullable=False, server_default=sa.func.now()),
    #: Incremented by every write of the record, under its row lock: what the record cache in
    #: Redis (:mod:`maie.store.record_cache`) compares, so an older copy never replaces a newer.
    sa.Column("revision", sa.BigInteger, nullable=False, server_default=sa.text("1")),
    sa.Column("completed_at", _when()),
    sa.Column("batch_id", sa.Text, sa.ForeignKey("batches.batch_id", ondelete="CASCADE")),
    sa.Column("filename", sa.Text),
    sa.Column("template_id", sa.Text),
    sa.Column("language", sa.Text),
    sa.Column("result_version", sa.Integer),
    sa.Column("record", JSONB, nullable=False),
    sa.CheckConstraint(sa.column("status").in_(_STATUSES), name="status"),
    # Keyset paging of a tenant's tasks, newest first (scanned backwards), and its filters.
    sa.Index(None, "tenant", "submitted_at", "task_id"),
    sa.Index(None, "tenant", "status", "submitted_at", "task_id"),
    sa.Index(
        None,
        "tenant",
        "template_id",
        "submitted_at",
        "task_id",
        postgresql_where=sa.text("template_id IS NOT NULL"),
    ),
    sa.Index(None, "batch_id", "submitted_at", "task_id", postgresql_where=sa.text("batch_id IS NOT NULL")),
    # The queue depth counts unfinished tasks only; retention purges by age across tenants.
    sa.Index("tasks_unfinished_idx", "submitted_at", postgresql_where=_UNFINISHED),
    sa.Index(None, "submitted_at"),
)

task_stages = sa.Table(
    "task_stages",
    metadata,
    _task_ref(),
    #: The stage's name, or ``job:<job_id>`` for a re-summarization job.
    sa.Column("stage_key", sa.Text, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("job_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("started_at", _when()),
    sa.Column("finished_at", _when()),
    sa.Column("duration_s", sa.Double),
    sa.Column("error", sa.Text),
    sa.Column("template_id", sa.Text),
    sa.Column("result_version", sa.Integer),
    sa.Index(None, "name", "status"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    _task_ref(),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_attempt_at", _when()),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", _when()),
    sa.Index(None, "state", postgresql_where=sa.text("state = 'pending'")),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    _task_ref(),
    sa.Column("stage", sa.Text, primary_key=True),
    sa.Column("body", JSONB, nullable=False),
    sa.Column("stored_at", _when(), nullable=False, server_default=sa.func.now()),
)

result_versions = sa.Table(
    "result_versions",
    metadata,
    _task_ref(),
    # The primary key is the UNIQUE (task_id, version) that makes one result per number.
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("created_at", _when(), nullable=False),
    sa.Column("template_id", sa.Text),
    sa.Column("body", JSONB, nullable=False),
    sa.CheckConstraint(sa.column("version") >= 1, name="version"),
)

idempotency_claims = sa.Table(
    "idempotency_claims",
    metadata,
    #: ``maie:idempotency:<tenant>:<sha256 of the key>``, as the API builds it.
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", _when(), nullable=False),
    sa.Index(None, "expires_at"),
)

admission_slots = sa.Table(
    "admission_slots",
    metadata,
    #: Queue slots held by submissions still being received (:mod:`maie.store.sql.admission`).
    sa.Column("slot_id", sa.Text, primary_key=True),
    sa.Column("expires_at", _when(), nullable=False),
)

search_texts = sa.Table(
    "search_texts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.task_id", ondelete="CASCADE"), nullable=False),
    #: ``raw`` or ``clean`` (a transcript segment) or ``summary`` (the summary's text).
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("segment_id", sa.Integer),
    sa.Column("start_s", sa.Double),
    sa.Column("end_s", sa.Double),
    sa.Column("speaker", sa.Text),
    sa.Column("body", sa.Text, nullable=False),
    #: Text search configuration of the task's language, ``simple`` where PostgreSQL has none.
    sa.Column("config", REGCONFIG, nullable=False),
    #: The text's lexemes, and each pair of adjacent ones as a lexeme "a b" (``maie_with_pairs``,
    #: a function the first migration makes), which finds phrases without reading every segment
    #: that holds their words.
    sa.Column(
        "document",
        TSVECTOR,
        sa.Computed("maie_with_pairs(to_tsvector(config, body))", persisted=True),
        nullable=False,
    ),
    sa.CheckConstraint(sa.column("source").in_(("raw", "clean", "summary")), name="source"),
    sa.Index(None, "document", postgresql_using="gin"),
    sa.Index(None, "task_id"),
)

search_documents = sa.Table(
    "search_documents",
    metadata,
    #: One document per task, all its texts together: a search picks its page of tasks here (one
    #: row per task, so neither a word said a hundred times in one recording nor a rare word
    #: makes the planner's estimate, and the page's cost, go wrong).
    _task_ref(),
    sa.Column("tenant", sa.Text, nullable=False),
    sa.Column("config", REGCONFIG, nullable=False),
    sa.Column("document", TSVECTOR, nullable=False),
    sa.Index(None, "document", postgresql_using="gin"),
    sa.Index(None, "tenant"),
)

search_configs = sa.Table(
    "search_configs",
    metadata,
    #: The text search configurations a tenant's texts use: a search parses its query with each.
    sa.Column("tenant", sa.Text, primary_key=True),
    sa.Column("config", REGCONFIG, primary_key=True),
)
