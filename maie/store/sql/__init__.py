"""The system of record on PostgreSQL: task records, artifacts, result versions, batches, claims, search.

:class:`SqlTaskStore` (the worker's, blocking) and :class:`AsyncSqlTaskStore` (the API's) have the
methods of the Redis stores in :mod:`maie.store`, with the same meaning, plus deletion, retention
and search. Both run the same operations (``records``, ``results``, ``batches``, ``claims``,
``deletion``, ``listing``, ``search``), written once as generators of SQL statements
(:mod:`~maie.store.sql.operations`) and driven over psycopg 3 (:mod:`~maie.store.sql.database`).
The tables are described in :mod:`~maie.store.sql.schema` and built by the Alembic migrations in
``migrations/`` (:mod:`~maie.store.sql.migrate`).
"""

from maie.store.sql.aio import AsyncSqlTaskStore
from maie.store.sql.blocking import SqlTaskStore
from maie.store.sql.database import AsyncDatabase, Database
from maie.store.sql.listing import TaskFilter
from maie.store.sql.migrate import current_revision, head_revision, is_current, upgrade

__all__ = [
    "AsyncDatabase",
    "AsyncSqlTaskStore",
    "Database",
    "SqlTaskStore",
    "TaskFilter",
    "current_revision",
    "head_revision",
    "is_current",
    "upgrade",
]
