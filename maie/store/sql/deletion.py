"""Deleting a task on request, and purging tasks older than the retention period.

A task's stages, webhook deliveries, artifacts, result versions and search texts are removed with
its row (``ON DELETE CASCADE``), in one transaction. The audio folder is on disk, not in the
database: each operation returns the records it deleted so the caller removes their audio (and
announces the deletion) after the commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maie.errors import NotFoundError
from maie.schemas import TaskRecord
from maie.store.sql.operations import Statement, Work, decode

if TYPE_CHECKING:
    from datetime import datetime

    from maie.store.sql.operations import Op

__all__ = ["RETENTION_LOCK", "delete_task", "purge"]

_LOCK = "SELECT record, batch_id FROM tasks WHERE task_id = %s AND tenant = %s FOR UPDATE"
_DELETE = "DELETE FROM tasks WHERE task_id = %s"
# The batch keeps listing its other tasks (``jsonb - text`` drops the id from the array).
_UNLIST = """
UPDATE batches SET record = jsonb_set(record, '{task_ids}', (record -> 'task_ids') - %s::text)
WHERE batch_id = %s
"""
# SKIP LOCKED: a task a worker is changing right now is purged next time instead of waited for.
_OLDEST = """
SELECT record FROM tasks WHERE submitted_at < %s ORDER BY submitted_at LIMIT %s FOR UPDATE SKIP LOCKED
"""
_DELETE_MANY = "DELETE FROM tasks WHERE task_id = ANY(%s)"
_EMPTY_BATCHES = """
DELETE FROM batches b
WHERE b.created_at < %s AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.batch_id = b.batch_id)
"""
_EXPIRED_CLAIMS = "DELETE FROM idempotency_claims WHERE expires_at <= now()"
#: Key of the advisory lock a purge holds for its transaction ("maie" + 2): one runner at a time.
RETENTION_LOCK = 0x6D616967
_TRY_LOCK = "SELECT pg_try_advisory_xact_lock(%s)"


def delete_task(task_id: str, *, tenant: str) -> Work[TaskRecord]:
    """Delete a task of ``tenant`` with everything it has; returns the record it was.

    Raises:
        NotFoundError: if there is no such task, or it belongs to another tenant (left untouched).
    """

    def op() -> Op[TaskRecord]:
        found = yield Statement(_LOCK, (task_id, tenant))
        if not found.rows:
            raise NotFoundError(f"task {task_id} not found")
        body, batch_id = found.rows[0]
        if batch_id is not None:
            yield Statement(_UNLIST, (task_id, batch_id))
        yield Statement(_DELETE, (task_id,))
        return decode(body, TaskRecord, "task")

    return Work(op, transaction=True)


def purge(before: datetime, *, limit: int) -> Work[list[TaskRecord] | None]:
    """Delete up to ``limit`` tasks submitted before ``before``, oldest first; returns them.

    Batches older than ``before`` that have no task left go too, and expired idempotency claims.
    Call again while it returns ``limit`` tasks: each call is one short transaction. Only one
    purge runs at a time across every process (an advisory lock); a call that finds another
    running returns None at once.
    """

    def op() -> Op[list[TaskRecord] | None]:
        locked = yield Statement(_TRY_LOCK, (RETENTION_LOCK,))
        if not locked.rows[0][0]:
            return None
        found = yield Statement(_OLDEST, (before, limit))
        purged = [decode(body, TaskRecord, "task") for (body,) in found.rows]
        if purged:
            yield Statement(_DELETE_MANY, ([r.task_id for r in purged],))
        yield Statement(_EMPTY_BATCHES, (before,))
        yield Statement(_EXPIRED_CLAIMS)
        return purged

    return Work(op, transaction=True)
