"""Batches: a batch and all its tasks are stored in one transaction, and removed the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from maie.errors import NotFoundError
from maie.schemas import BatchRecord, TaskRecord
from maie.store.sql import admission, records
from maie.store.sql.operations import Statement, Work, decode, jsonb

if TYPE_CHECKING:
    from collections.abc import Collection

    from maie.store.sql.operations import Op

__all__ = ["create_batch", "delete_batch", "discard_batch", "get_batch"]

_INSERT = """
INSERT INTO batches (batch_id, tenant, created_at, record) VALUES (%s, %s, %s, %s)
ON CONFLICT (batch_id) DO NOTHING
"""
_GET = "SELECT record FROM batches WHERE batch_id = %s"
_LOCK = "SELECT record FROM batches WHERE batch_id = %s AND tenant = %s FOR UPDATE"
_LOCK_TASKS = "SELECT record FROM tasks WHERE batch_id = %s ORDER BY task_id FOR UPDATE"
# The batch's tasks go with it (ON DELETE CASCADE), and their stages, artifacts and versions with them.
_DELETE = "DELETE FROM batches WHERE batch_id = %s"
_DELETE_TASKS = "DELETE FROM tasks WHERE task_id = ANY(%s)"


def create_batch(
    batch: BatchRecord, tasks: Collection[TaskRecord], *, slots: Collection[str] = ()
) -> Work[None]:
    """Store a batch and all its tasks (each counts toward the queue depth), in one transaction.

    The queue slots the submission held are freed in the same transaction.
    """
    listed = list(tasks)

    def op() -> Op[None]:
        yield Statement(_INSERT, (batch.batch_id, batch.tenant, batch.created_at, jsonb(batch)))
        yield from records.insert_tasks(listed)
        yield from admission.free(slots)

    return Work(op, transaction=True, what=f"batch {batch.batch_id}")


def discard_batch(batch: BatchRecord) -> Work[None]:
    """Remove a batch that could not be queued, and its tasks."""

    def op() -> Op[None]:
        if batch.task_ids:
            yield Statement(_DELETE_TASKS, (list(batch.task_ids),))
        yield Statement(_DELETE, (batch.batch_id,))

    return Work(op, transaction=True)


def get_batch(batch_id: str) -> Work[BatchRecord]:
    """The batch record.

    Raises:
        NotFoundError: if there is no such batch.
    """

    def op() -> Op[BatchRecord]:
        found = yield Statement(_GET, (batch_id,))
        return decode(found.rows[0][0] if found.rows else None, BatchRecord, "batch")

    return Work(op, transaction=False)


def delete_batch(batch_id: str, *, tenant: str) -> Work[tuple[BatchRecord, list[TaskRecord]]]:
    """Delete a batch of ``tenant`` with every task of it; returns them (their audio is the caller's).

    Raises:
        NotFoundError: if there is no such batch, or it belongs to another tenant (left untouched).
    """

    def op() -> Op[tuple[BatchRecord, list[TaskRecord]]]:
        found = yield Statement(_LOCK, (batch_id, tenant))
        if not found.rows:
            raise NotFoundError(f"batch {batch_id} not found")
        batch = decode(found.rows[0][0], BatchRecord, "batch")
        locked = yield Statement(_LOCK_TASKS, (batch_id,))
        tasks = [decode(body, TaskRecord, "task") for (body,) in locked.rows]
        yield Statement(_DELETE, (batch_id,))
        return batch, tasks

    return Work(op, transaction=True)
