"""Stage artifacts and immutable result versions.

A version is one row of ``result_versions``, whose primary key (task_id, version) is the unique
constraint that makes one result per number; a trigger refuses any UPDATE of a stored version.
Writers of versions hold the task's row lock (``SELECT ... FOR UPDATE``), so two re-summaries
racing get consecutive numbers with no gap, and the search index always follows the newest version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import msgspec

from maie.errors import NotFoundError
from maie.schemas import ResultVersion, ResultVersionInfo
from maie.store.sql import records, search_index
from maie.store.sql.operations import Statement, Work, clone, decode, decode_optional, jsonb

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from maie.store.sql.operations import Op

StructT = TypeVar("StructT", bound=msgspec.Struct)

__all__ = [
    "add_result",
    "get_artifact",
    "get_result",
    "get_results",
    "list_results",
    "put_artifact",
    "put_result",
]

_PUT_ARTIFACT = """
INSERT INTO artifacts (task_id, stage, body) VALUES (%s, %s, %s)
ON CONFLICT (task_id, stage) DO UPDATE SET body = EXCLUDED.body, stored_at = now()
"""
_GET_ARTIFACT = "SELECT body FROM artifacts WHERE task_id = %s AND stage = %s"
_INSERT_RESULT = """
INSERT INTO result_versions (task_id, version, kind, created_at, template_id, body)
VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (task_id, version) DO NOTHING
"""
_LATEST = "SELECT coalesce(max(version), 0) FROM result_versions WHERE task_id = %s"
_GET_RESULT = "SELECT body FROM result_versions WHERE task_id = %s AND version = %s"
_GET_RESULTS = """
SELECT r.task_id, r.version, r.body
FROM result_versions r JOIN unnest(%s::text[], %s::int[]) AS k(task_id, version) USING (task_id, version)
"""
_LIST = """
SELECT version, created_at, kind, template_id FROM result_versions
WHERE task_id = %s AND version BETWEEN 1 AND %s ORDER BY version
"""


def put_artifact(task_id: str, stage: str, artifact: msgspec.Struct) -> Work[None]:
    """Store (or replace) a stage's artifact.

    Raises:
        NotFoundError: if the task is gone (deleted while the stage ran).
    """

    def op() -> Op[None]:
        yield Statement(_PUT_ARTIFACT, (task_id, stage, jsonb(artifact)))

    return Work(op, transaction=False, what=f"task {task_id}")


def get_artifact(task_id: str, stage: str, kind: type[StructT]) -> Work[StructT | None]:
    """A stage's artifact, or None if the stage has not stored one."""

    def op() -> Op[StructT | None]:
        found = yield Statement(_GET_ARTIFACT, (task_id, stage))
        return decode_optional(found.rows[0][0] if found.rows else None, kind)

    return Work(op, transaction=False)


def put_result(task_id: str, result: ResultVersion) -> Work[bool]:
    """Store an immutable result version; False if that version exists already (nothing changes).

    Raises:
        NotFoundError: if the task is gone.
    """

    def op() -> Op[bool]:
        record = yield from records.locked(task_id)
        stored = yield Statement(_INSERT_RESULT, _result_row(task_id, result))
        if stored.rowcount == 0:
            return False
        latest = yield Statement(_LATEST, (task_id,))
        if result.version >= latest.rows[0][0]:
            yield from search_index.follow(record, result)
        return True

    return Work(op, transaction=True, what=f"task {task_id}")


def get_result(task_id: str, version: int) -> Work[ResultVersion | None]:
    """Result version ``version`` of the task, or None."""

    def op() -> Op[ResultVersion | None]:
        found = yield Statement(_GET_RESULT, (task_id, version))
        return decode_optional(found.rows[0][0] if found.rows else None, ResultVersion)

    return Work(op, transaction=False)


def get_results(keys: Collection[tuple[str, int]]) -> Work[list[ResultVersion | None]]:
    """Result versions by ``(task_id, version)``, in order; None where one is missing."""
    wanted = list(keys)

    def op() -> Op[list[ResultVersion | None]]:
        if not wanted:
            return []
        found = yield Statement(_GET_RESULTS, ([t for t, _ in wanted], [v for _, v in wanted]))
        by_key = {(task_id, version): body for task_id, version, body in found.rows}
        return [decode_optional(by_key.get(key), ResultVersion) for key in wanted]

    return Work(op, transaction=False)


def list_results(task_id: str, latest: int) -> Work[list[ResultVersionInfo]]:
    """What versions 1..``latest`` of a task are, read from columns (no transcript is decoded)."""

    def op() -> Op[list[ResultVersionInfo]]:
        if latest < 1:
            return []
        found = yield Statement(_LIST, (task_id, latest))
        return [
            ResultVersionInfo(version=version, created_at=created_at, kind=kind, template_id=template_id)
            for version, created_at, kind, template_id in found.rows
        ]

    return Work(op, transaction=False)


def add_result(
    task_id: str, build: Callable[[int], ResultVersion], *, job_id: str | None = None
) -> Work[tuple[ResultVersion, records.Revised | None]]:
    """Store ``build(n)`` as the task's next version n and make it the latest, in one transaction.

    With ``job_id``, the job's stage is marked with its version in the same transaction, and a
    job that has a version already gets that one back (its message was delivered twice).

    Returns:
        The version, and the task record as it was written (None when nothing was).

    Raises:
        NotFoundError: if the task or the job does not exist, or the job's version is gone.
    """

    def op() -> Op[tuple[ResultVersion, records.Revised | None]]:
        before = yield from records.locked(task_id)
        record = clone(before)
        try:
            job = record.job(job_id) if job_id else None
        except KeyError:
            raise NotFoundError(f"task {task_id} has no job {job_id}") from None
        if job is not None and job.result_version is not None:
            found = yield Statement(_GET_RESULT, (task_id, job.result_version))
            if not found.rows:
                raise NotFoundError(f"result version {job.result_version} of task {task_id} is gone")
            return decode(found.rows[0][0], ResultVersion, "result version"), None
        latest = yield Statement(_LATEST, (task_id,))
        version = max(record.result_version or 0, latest.rows[0][0]) + 1
        result = build(version)
        yield Statement(_INSERT_RESULT, _result_row(task_id, result))
        record.result_version = version
        if job is not None:
            job.result_version = version
        saved = yield from records.save(before, record)
        yield from search_index.follow(record, result)
        return result, saved

    return Work(op, transaction=True, what=f"task {task_id}")


def _result_row(task_id: str, result: ResultVersion) -> tuple[object, ...]:
    return (task_id, result.version, result.kind, result.created_at, result.template_id, jsonb(result))
