"""The worker's store on PostgreSQL: the methods of the Redis ``TaskStore``, on a blocking pool.

Heartbeats stay in Redis (they are not records); this store has none.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import msgspec

from maie.config import DatabaseSettings
from maie.store.sql import deletion, records, results
from maie.store.sql.database import Database

if TYPE_CHECKING:
    from collections.abc import Callable

    from maie.schemas import ResultVersion, TaskRecord

__all__ = ["SqlTaskStore"]

StructT = TypeVar("StructT", bound=msgspec.Struct)


class SqlTaskStore:
    """Blocking store used by the worker (thread-safe: one pool per process).

    Args:
        database: The connection pool.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    @classmethod
    def from_url(cls, url: str, settings: DatabaseSettings | None = None) -> SqlTaskStore:
        """A store on ``url`` (no connection is made before the first call)."""
        return cls(Database(url, settings or DatabaseSettings()))

    def ping(self) -> bool:
        """Whether PostgreSQL answers."""
        return self.database.ping()

    def get(self, task_id: str) -> TaskRecord:
        """Return the task record.

        Raises:
            NotFoundError: if there is no such task.
            StoreUnavailableError: if PostgreSQL cannot be reached.
        """
        return self.database.run(records.get(task_id))

    def update(self, task_id: str, change: Callable[[TaskRecord], None]) -> TaskRecord:
        """Apply ``change`` to the stored record under its row lock and return the result.

        ``change`` may run more than once (a transaction retried after a deadlock), so it must only
        mutate the record it is given; an exception it raises leaves the record as it was.

        Raises:
            NotFoundError: if there is no such task.
            ConflictError: if the change would move the status backwards.
        """
        return self.database.run(records.update(task_id, change))

    def put_artifact(self, task_id: str, stage: str, artifact: msgspec.Struct) -> None:
        """Store (or replace) a stage's artifact.

        Raises:
            NotFoundError: if the task is gone (deleted while the stage ran).
        """
        self.database.run(results.put_artifact(task_id, stage, artifact))

    def get_artifact(self, task_id: str, stage: str, kind: type[StructT]) -> StructT | None:
        """Return a stage's artifact, or None if the stage has not stored one yet."""
        return self.database.run(results.get_artifact(task_id, stage, kind))

    def put_result(self, task_id: str, result: ResultVersion) -> bool:
        """Store an immutable result version; returns False if that version already exists."""
        return self.database.run(results.put_result(task_id, result))

    def get_result(self, task_id: str, version: int) -> ResultVersion | None:
        """Return result version ``version``, or None."""
        return self.database.run(results.get_result(task_id, version))

    def add_result(
        self, task_id: str, build: Callable[[int], ResultVersion], *, job_id: str | None = None
    ) -> ResultVersion:
        """Store ``build(n)`` as the task's next result version n and make it the latest, atomically.

        Two writers racing get consecutive numbers, without gaps. With ``job_id``, the job's stage
        is marked with its version in the same transaction, and a job that already has a version
        gets that one back instead of a second.

        Raises:
            NotFoundError: if the task or the job does not exist.
        """
        return self.database.run(results.add_result(task_id, build, job_id=job_id))

    def delete_task(self, task_id: str, *, tenant: str) -> TaskRecord:
        """Delete a task of ``tenant`` and everything it has; returns its record (for its audio).

        Raises:
            NotFoundError: if there is no such task of ``tenant``.
        """
        return self.database.run(deletion.delete_task(task_id, tenant=tenant))

    def purge(self, older_than: timedelta, *, limit: int = 500) -> list[TaskRecord]:
        """Delete up to ``limit`` tasks submitted longer than ``older_than`` ago; returns them."""
        return self.database.run(deletion.purge(datetime.now(UTC) - older_than, limit=limit))

    def close(self) -> None:
        """Close the connection pool."""
        self.database.close()
