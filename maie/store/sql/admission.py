"""Queue slots against ``MAIE_MAX_QUEUE_DEPTH``, held in the system of record beside the tasks they become.

A submission holds a slot from before its body is read until its task is stored; the task's
``INSERT`` deletes the slot in the same transaction (:func:`maie.store.sql.records.create`). A
check counts unfinished tasks and live slots in one statement, so it sees one snapshot: a
submission being stored counts once, as its slot or as its task, never twice and never not at
all. Checks take turns on an advisory lock, so two submissions cannot both take the last slot.
The queue depth therefore comes from the tasks themselves: wiping Redis cannot make it forget
unfinished work, and no second copy of it has to be kept in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maie.store.sql.operations import Statement, Work

if TYPE_CHECKING:
    from collections.abc import Collection

    from maie.store.sql.operations import Op

__all__ = ["ADMISSION_LOCK", "UNFINISHED", "free", "free_slots", "hold_slots", "queue_depth"]

#: Key of the advisory lock admission checks take turns on ("maie" + 1).
ADMISSION_LOCK = 0x6D616966
#: Unfinished tasks submitted within a window (older ones are stuck, not waiting): the predicate
#: of the partial index ``tasks_unfinished_idx``, so counting reads that index only.
UNFINISHED = """
SELECT count(*) FROM tasks
WHERE status NOT IN ('COMPLETE', 'FAILED') AND submitted_at > now() - make_interval(secs => %(window)s)
"""
_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_EXPIRE = "DELETE FROM admission_slots WHERE expires_at <= now()"
_USED = f"SELECT ({UNFINISHED}) + (SELECT count(*) FROM admission_slots)"  # noqa: S608 - constants only
_HOLD = """
INSERT INTO admission_slots (slot_id, expires_at)
SELECT slot, now() + make_interval(secs => %s) FROM unnest(%s::text[]) AS s(slot)
ON CONFLICT (slot_id) DO NOTHING
"""
_FREE = "DELETE FROM admission_slots WHERE slot_id = ANY(%s)"


def hold_slots(slots: Collection[str], *, limit: int, hold_s: float, window_s: int) -> Work[int | None]:
    """Hold ``slots`` if unfinished tasks plus the slots others hold leave room under ``limit``.

    Args:
        slots: New slot ids (one per recording the submission brings).
        limit: ``MAIE_MAX_QUEUE_DEPTH``.
        hold_s: Seconds until an unused slot expires (an API killed mid-upload never frees it).
        window_s: Unfinished tasks submitted longer ago than this are stuck, not counted.

    Returns:
        None when the slots are held; else how many are in use.
    """
    wanted = list(slots)

    def op() -> Op[int | None]:
        yield Statement(_LOCK, (ADMISSION_LOCK,))
        yield Statement(_EXPIRE)
        found = yield Statement(_USED, {"window": window_s})
        used = int(found.rows[0][0])
        if used + len(wanted) > limit:
            return used
        yield Statement(_HOLD, (hold_s, wanted))
        return None

    return Work(op, transaction=True)


def free(slots: Collection[str]) -> Op[None]:
    """Free ``slots`` inside the caller's transaction (the one that stores their tasks)."""
    if slots:
        yield Statement(_FREE, (list(slots),))


def free_slots(slots: Collection[str]) -> Work[None]:
    """Give back slots a submission no longer needs (freed or expired ones are ignored)."""
    wanted = list(slots)
    return Work(lambda: free(wanted), transaction=False)


def queue_depth(window_s: int) -> Work[int]:
    """Unfinished tasks submitted within the last ``window_s`` seconds (older ones are stuck, not queued)."""

    def op() -> Op[int]:
        found = yield Statement(UNFINISHED, {"window": window_s})
        return int(found.rows[0][0])

    return Work(op, transaction=False)
