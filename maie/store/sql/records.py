"""Task records: create, read, change under a row lock, discard.

``update`` replaces Redis's optimistic WATCH/MULTI with ``SELECT ... FOR UPDATE``: writers of one
task take turns, so ``change`` always sees the latest record and runs once per attempt. A change
that would move the status backwards (or away from COMPLETE/FAILED) is refused, whoever makes it.

Every write of a record increments its ``revision`` under that lock, and reads and writes hand
the revision back with the record (:class:`Revised`): the record cache in Redis
(:mod:`maie.store.record_cache`) keeps whichever copy has the higher one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from maie.errors import ConflictError, NotFoundError
from maie.schemas import TaskRecord
from maie.store.sql import admission, projection
from maie.store.sql.operations import Statement, Work, clone, decode, decode_optional, jsonb, plain_text

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from maie.store.sql.operations import Op

__all__ = [
    "Revised",
    "Updated",
    "create",
    "discard",
    "get",
    "get_many",
    "insert_tasks",
    "locked",
    "save",
    "update",
]

T = TypeVar("T")


class Updated(NamedTuple, Generic[T]):
    """What ``update`` made: the stored record, and what the change returned about it."""

    record: TaskRecord
    value: T


class Revised(NamedTuple):
    """A record as stored, with its revision (higher is newer; a new task's is 1)."""

    record: TaskRecord
    revision: int


_INSERT = """
INSERT INTO tasks (task_id, tenant, status, submitted_at, completed_at, batch_id, filename,
                   template_id, language, result_version, record)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (task_id) DO NOTHING
"""
_GET = "SELECT record, revision FROM tasks WHERE task_id = %s"
_LOCK = "SELECT record FROM tasks WHERE task_id = %s FOR UPDATE"
_SAVE = """
UPDATE tasks SET status = %s, completed_at = %s, result_version = %s, record = %s, updated_at = now(),
                 revision = revision + 1
WHERE task_id = %s
RETURNING revision
"""
_GET_MANY = "SELECT task_id, record FROM tasks WHERE task_id = ANY(%s)"
_DISCARD = "DELETE FROM tasks WHERE task_id = %s"


def _row(record: TaskRecord) -> tuple[Any, ...]:
    request = record.request
    return (
        record.task_id, record.tenant, record.status.value, record.submitted_at, record.completed_at,
        record.batch_id, plain_text(request.filename) if request.filename else None, request.template_id,
        request.language, record.result_version, jsonb(record),
    )  # fmt: skip


def insert_tasks(records: Sequence[TaskRecord]) -> Op[None]:
    """Insert new task records and their stage rows (an id that exists already is left alone)."""
    if not records:
        return
    yield Statement(_INSERT, many=[_row(r) for r in records])
    for record in records:
        yield from projection.follow(None, record)


def create(record: TaskRecord, *, slots: Collection[str] = ()) -> Work[None]:
    """Store a new task (it counts toward the queue depth until it finishes), freeing its ``slots``.

    The queue slots its submission held are freed in the same transaction, so an admission check
    (:mod:`maie.store.sql.admission`) sees either the slot or the task, never both nor neither.
    """

    def op() -> Op[None]:
        yield from insert_tasks([record])
        yield from admission.free(slots)

    return Work(op, transaction=True)


def get(task_id: str) -> Work[Revised]:
    """The task record and its revision.

    Raises:
        NotFoundError: if there is no such task.
    """

    def op() -> Op[Revised]:
        found = yield Statement(_GET, (task_id,))
        if not found.rows:
            raise NotFoundError("task not found")
        body, revision = found.rows[0]
        return Revised(decode(body, TaskRecord, "task"), revision)

    return Work(op, transaction=False)


def get_many(task_ids: Collection[str]) -> Work[list[TaskRecord | None]]:
    """The records of ``task_ids`` in order; None where a task is gone."""
    ids = list(task_ids)

    def op() -> Op[list[TaskRecord | None]]:
        if not ids:
            return []
        found = yield Statement(_GET_MANY, (ids,))
        by_id = dict(found.rows)
        return [decode_optional(by_id.get(task_id), TaskRecord) for task_id in ids]

    return Work(op, transaction=False)


def locked(task_id: str) -> Op[TaskRecord]:
    """Lock the task's row for the rest of the transaction and return its record.

    Raises:
        NotFoundError: if there is no such task.
    """
    found = yield Statement(_LOCK, (task_id,))
    if not found.rows:
        raise NotFoundError(f"task {task_id} not found")
    return decode(found.rows[0][0], TaskRecord, "task")


def save(before: TaskRecord, record: TaskRecord) -> Op[Revised]:
    """Write ``record`` over ``before`` (its locked row), refusing a status that moves backwards.

    Returns:
        ``record`` with the revision it was stored as.

    Raises:
        ConflictError: if the status would move backwards or leave COMPLETE/FAILED.
    """
    old, new = before.status, record.status
    if new.rank < old.rank or (old.terminal and new != old):
        raise ConflictError(f"task {record.task_id} is {old.value}; its status cannot move to {new.value}")
    saved = yield Statement(
        _SAVE, (new.value, record.completed_at, record.result_version, jsonb(record), record.task_id)
    )
    yield from projection.follow(before, record)
    return Revised(record, saved.rows[0][0])


def update(task_id: str, change: Callable[[TaskRecord], T]) -> Work[tuple[Updated[T], Revised | None]]:
    """Apply ``change`` to the stored record under its row lock.

    ``change`` may run again if PostgreSQL aborts the transaction to break a deadlock; an
    exception it raises leaves the record as it was. A change that alters nothing writes nothing.

    Returns:
        The record and what ``change`` returned, and what was written (None if nothing was).

    Raises:
        NotFoundError: if there is no such task.
        ConflictError: if the change moves the status backwards.
    """

    def op() -> Op[tuple[Updated[T], Revised | None]]:
        before = yield from locked(task_id)
        record = clone(before)
        value = change(record)
        saved = (yield from save(before, record)) if record != before else None
        return Updated(record, value), saved

    return Work(op, transaction=True)


def discard(task_id: str) -> Work[None]:
    """Remove a task that could not be queued (its stages, artifacts and results go with it)."""

    def op() -> Op[None]:
        yield Statement(_DISCARD, (task_id,))

    return Work(op, transaction=True)
