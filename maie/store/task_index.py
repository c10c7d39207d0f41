"""Each tenant's tasks in submit order, for ``GET /v1/tasks`` paged by an opaque cursor.

The index of a tenant is one sorted set, ``maie:tenant:<tenant>:tasks``, whose members all have
score 0 and read ``<submitted_at in µs, 17 digits>:<task_id>``; lexicographic order is then
submit order, ties (the tasks of one batch share a submit time) broken by task id. A page is a
``ZREVRANGEBYLEX`` that starts just below the cursor (the last member the previous page looked
at), so a page is stable however many tasks arrive meanwhile, and paging costs the same on page 1
and page 1000.

Index entries are not removed with their task: a record that expired (or was discarded) is
noticed while paging and its entry dropped then; entries older than the record TTL are trimmed
by submit time.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from maie.errors import InvalidRequestError
from maie.store.keys import tenant_tasks_key

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection

    from maie.schemas import TaskRecord

__all__ = ["MAX_SCAN", "add", "decode_cursor", "encode_cursor", "member", "page"]

#: Most index entries one page looks at when a status filter skips tasks; a page may then hold
#: fewer than ``limit`` tasks and still have a ``next_cursor``.
MAX_SCAN = 2000
#: Entries read from Redis per round trip while filling a page.
_CHUNK = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Shape of an index member (and of a decoded cursor).
_MEMBER = re.compile(r"^\d{17}:[0-9a-f-]{36}$")


def member(record: TaskRecord) -> str:
    """The index entry of ``record``."""
    micros = (record.submitted_at - _EPOCH) // timedelta(microseconds=1)  # exact, unlike a float
    return f"{micros:017d}:{record.task_id}"


def add(pipe: Any, record: TaskRecord, *, ttl_s: int) -> None:  # noqa: ANN401 - sync or async pipeline
    """Queue the commands that index ``record`` on ``pipe`` (the index lives as long as its newest task)."""
    key = tenant_tasks_key(record.tenant)
    pipe.zadd(key, {member(record): 0})
    pipe.expire(key, ttl_s)


def encode_cursor(entry: str) -> str:
    """The opaque cursor a client gets for index entry ``entry``."""
    return base64.urlsafe_b64encode(entry.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The index entry behind ``cursor``.

    Raises:
        InvalidRequestError: if the cursor was not made by :func:`encode_cursor`.
    """
    try:
        entry = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        entry = ""
    if not _MEMBER.match(entry):
        raise InvalidRequestError("invalid cursor: pass back the next_cursor of a previous page unchanged")
    return entry


async def page(
    client: Any,  # noqa: ANN401 - redis.asyncio.Redis, untyped for pipelines
    tenant: str,
    *,
    load: Callable[[list[str]], Awaitable[list[TaskRecord | None]]],
    statuses: Collection[str],
    limit: int,
    cursor: str | None,
    ttl_s: int,
) -> tuple[list[TaskRecord], str | None]:
    """One page of the tenant's tasks, newest first.

    Args:
        client: The results-database client.
        tenant: Whose tasks.
        load: Loads task records by id (None for a task that is gone).
        statuses: Keep only tasks in these statuses; empty keeps all.
        limit: Most tasks returned.
        cursor: ``next_cursor`` of the previous page, or None for the first page.
        ttl_s: Record lifetime; older entries are trimmed.

    Returns:
        The tasks and the cursor of the next page (None when there is no more).

    Raises:
        InvalidRequestError: for a cursor this server did not hand out.
    """
    key = tenant_tasks_key(tenant)
    oldest = f"{int((time.time() - ttl_s) * 1_000_000):017d}"
    await client.zremrangebylex(key, "-", f"({oldest}")
    upper = f"({decode_cursor(cursor)}" if cursor else "+"
    found: list[TaskRecord] = []
    stale: list[str] = []
    scanned = 0
    last: str | None = None
    more = True
    while len(found) < limit and scanned < MAX_SCAN:
        raw = await client.zrevrangebylex(key, upper, "-", start=0, num=_CHUNK)
        entries = [e.decode() if isinstance(e, bytes) else str(e) for e in raw]
        if not entries:
            more = False
            break
        records = await load([e.partition(":")[2] for e in entries])
        for entry, record in zip(entries, records, strict=True):
            scanned += 1
            last = entry
            if record is None:
                stale.append(entry)
            elif not statuses or record.status.value in statuses:
                found.append(record)
            if len(found) >= limit or scanned >= MAX_SCAN:
                break
        upper = f"({last}"
    if stale:
        await client.zrem(key, *stale)
    if more and last is not None:
        more = bool(await client.zrevrangebylex(key, f"({last}", "-", start=0, num=1))
    return found, encode_cursor(last) if more and last is not None else None
