"""A tenant's tasks newest first, filtered, paged by an opaque cursor (keyset paging).

A page is ``... WHERE tenant = $1 AND (submitted_at, task_id) < (cursor) ORDER BY submitted_at
DESC, task_id DESC LIMIT n``: the index ``tasks (tenant, submitted_at, task_id)`` is read
backwards from the cursor, so a page deep in the history costs what the first one does, and a
page is stable however many tasks arrive meanwhile. Ties (the tasks of one batch share a submit
time) are broken by task id. Filters on status, template and batch have indexes of the same shape.

The cursor is the last task of the page, ``<submitted_at in µs>:<task_id>`` in URL-safe base64:
the same form as the Redis task index's, so a cursor handed out before the move stays valid.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from psycopg import sql

from maie.errors import InvalidRequestError
from maie.schemas import TaskRecord
from maie.store.sql.operations import Statement, Work, decode

if TYPE_CHECKING:
    from collections.abc import Collection

    from maie.store.sql.operations import Op

__all__ = [
    "MAX_PAGE",
    "TaskFilter",
    "check_limit",
    "decode_cursor",
    "encode_cursor",
    "filter_clause",
    "list_tasks",
    "with_statuses",
]

#: Most tasks one page holds.
MAX_PAGE = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Shape of a decoded cursor: submit time in µs, task id.
_CURSOR = re.compile(r"^(\d{1,17}):([0-9A-Za-z_-]{1,64})$")


class TaskFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which of a tenant's tasks a list or a search keeps; every field set narrows it."""

    #: Task statuses (``TaskStatus`` values); empty keeps all.
    statuses: frozenset[str] = frozenset()
    #: Submitted at or after this time.
    submitted_after: datetime | None = None
    #: Submitted before this time.
    submitted_before: datetime | None = None
    #: The template the task was submitted with.
    template_id: str | None = None
    #: The batch the task belongs to.
    batch_id: str | None = None


def with_statuses(filters: TaskFilter, statuses: Collection[str]) -> TaskFilter:
    """``filters`` keeping only tasks in ``statuses`` (in place of its own statuses)."""
    return msgspec.structs.replace(filters, statuses=frozenset(statuses))


def encode_cursor(submitted_at: datetime, task_id: str) -> str:
    """The opaque cursor that resumes a listing after this task."""
    micros = (submitted_at - _EPOCH) // timedelta(microseconds=1)  # exact, unlike a float
    return base64.urlsafe_b64encode(f"{micros:017d}:{task_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The submit time and task id behind ``cursor``.

    Raises:
        InvalidRequestError: if the cursor was not made by :func:`encode_cursor`.
    """
    try:
        entry = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        entry = ""
    match = _CURSOR.match(entry)
    if match is None:
        raise InvalidRequestError("invalid cursor: pass back the next_cursor of a previous page unchanged")
    return _EPOCH + timedelta(microseconds=int(match[1])), match[2]


def filter_clause(
    tenant: str, filters: TaskFilter, cursor: str | None, *, table: str = "tasks"
) -> tuple[sql.Composable, dict[str, Any]]:
    """The ``WHERE`` conditions (on ``table``'s columns) and parameters for ``filters`` after ``cursor``.

    Only the conditions that apply are written, so each combination gets a plan that uses its
    index (one ``IS NULL OR`` clause for all would not).
    """
    column = sql.Identifier(table)
    params: dict[str, Any] = {"tenant": tenant}
    parts = [sql.SQL("{}.tenant = %(tenant)s").format(column)]
    statuses = sorted(filters.statuses)
    if len(statuses) == 1:
        parts.append(sql.SQL("{}.status = %(status)s").format(column))
        params["status"] = statuses[0]
    elif statuses:
        parts.append(sql.SQL("{}.status = ANY(%(statuses)s)").format(column))
        params["statuses"] = statuses
    if filters.submitted_after is not None:
        parts.append(sql.SQL("{}.submitted_at >= %(after)s").format(column))
        params["after"] = filters.submitted_after
    if filters.submitted_before is not None:
        parts.append(sql.SQL("{}.submitted_at < %(before)s").format(column))
        params["before"] = filters.submitted_before
    if filters.template_id is not None:
        parts.append(sql.SQL("{}.template_id = %(template_id)s").format(column))
        params["template_id"] = filters.template_id
    if filters.batch_id is not None:
        parts.append(sql.SQL("{}.batch_id = %(batch_id)s").format(column))
        params["batch_id"] = filters.batch_id
    if cursor is not None:
        params["cursor_at"], params["cursor_id"] = decode_cursor(cursor)
        parts.append(
            sql.SQL("({0}.submitted_at, {0}.task_id) < (%(cursor_at)s, %(cursor_id)s)").format(column)
        )
    return sql.SQL(" AND ").join(parts), params


def check_limit(limit: int) -> None:
    """Refuse a page size outside 1..MAX_PAGE.

    Raises:
        InvalidRequestError: naming the bounds.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")


def list_tasks(
    tenant: str, filters: TaskFilter, *, limit: int, cursor: str | None
) -> Work[tuple[list[TaskRecord], str | None]]:
    """One page of the tenant's tasks, newest first, and the cursor of the next (None at the end).

    Raises:
        InvalidRequestError: for a cursor this server did not hand out, or a bad limit.
    """
    check_limit(limit)
    where, params = filter_clause(tenant, filters, cursor)
    params["limit"] = limit + 1  # one more tells whether there is a next page
    query = sql.SQL(
        "SELECT submitted_at, task_id, record FROM tasks WHERE {} "
        "ORDER BY submitted_at DESC, task_id DESC LIMIT %(limit)s"
    ).format(where)

    def op() -> Op[tuple[list[TaskRecord], str | None]]:
        found = yield Statement(query, params)
        rows = found.rows[:limit]
        records = [decode(body, TaskRecord, "task") for _, _, body in rows]
        more = len(found.rows) > limit
        return records, encode_cursor(rows[-1][0], rows[-1][1]) if more else None

    return Work(op, transaction=False)
