"""The system of record on PostgreSQL: task records, artifacts, result versions, batches, claims, search.

The stores the API and the worker use (:class:`maie.store.AsyncTaskStore`,
:class:`maie.store.TaskStore`) run the operations of this package (``records``, ``results``,
``batches``, ``claims``, ``admission``, ``deletion``, ``listing``, ``search``), each written once
as a generator of SQL statements (:mod:`~maie.store.sql.operations`) and driven over psycopg 3,
blocking or async (:mod:`~maie.store.sql.database`). The tables are described in
:mod:`~maie.store.sql.schema` and built by the Alembic migrations in ``migrations/``
(:mod:`~maie.store.sql.migrate`).
"""

from maie.store.sql.database import AsyncDatabase, Database
from maie.store.sql.listing import TaskFilter
from maie.store.sql.migrate import current_revision, head_revision, is_current, require_current, upgrade

__all__ = [
    "AsyncDatabase",
    "Database",
    "TaskFilter",
    "current_revision",
    "head_revision",
    "is_current",
    "require_current",
    "upgrade",
]
