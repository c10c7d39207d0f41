"""Connections to PostgreSQL: a pool per process, and the drivers that run store operations.

The driver is psycopg 3, used directly for both stores: its blocking and async connections have
the same API, so :class:`Database` (worker) and :class:`AsyncDatabase` (API) run the same
:class:`~maie.store.sql.operations.Work`. SQLAlchemy describes the schema and runs the
migrations; a status read through its async engine measured several times slower than
psycopg alone, which status polling cannot afford.

Connections are autocommit: a read is one round trip, and writes open a transaction explicitly.
JSONB comes back as raw bytes for msgspec to decode straight into the contract Struct. A pooled
connection that the server closed (a restart) is noticed without a round trip when it is taken
from the pool, by looking whether its socket has become readable, and replaced. Connection
failures surface as :class:`~maie.errors.StoreUnavailableError`, never as a driver error.
"""

from __future__ import annotations

import select
import threading
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import structlog
from psycopg import errors
from psycopg.adapt import Loader
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from maie.errors import NotFoundError, StoreUnavailableError
from maie.store.sql.operations import Rows

if TYPE_CHECKING:
    from maie.config import DatabaseSettings
    from maie.store.sql.operations import Op, Statement, Work

__all__ = ["AsyncDatabase", "Database", "conninfo", "sqlalchemy_url", "unavailable"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Attempts of a transaction that PostgreSQL aborted to break a deadlock.
ATTEMPTS = 3
_RETRY = (errors.DeadlockDetected, errors.SerializationFailure)
#: What the driver raises when the server is away: refused or lost connections, a pool that
#: waited in vain, a server shutting down or still starting up, a connection found closed.
_DOWN = (psycopg.OperationalError, psycopg.InterfaceError)


def conninfo(url: str) -> str:
    """The libpq form of ``url`` (SQLAlchemy's ``postgresql+psycopg://`` is accepted too)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql")) if "+" in parts.scheme else url


def sqlalchemy_url(url: str) -> str:
    """``url`` naming psycopg as SQLAlchemy's driver."""
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql+psycopg"))


def unavailable(exc: Exception) -> StoreUnavailableError:
    """The error raised when PostgreSQL cannot be reached."""
    return StoreUnavailableError(f"the task store (PostgreSQL) cannot be reached: {exc}")


class _RawJsonLoader(Loader):
    """JSONB as the bytes PostgreSQL sent (msgspec decodes them into the Struct, no dict in between)."""

    def load(self, data: Any) -> bytes:  # noqa: ANN401 - psycopg passes a buffer
        return bytes(data)


def _options(settings: DatabaseSettings) -> dict[str, Any]:
    # No parallel workers: the store's statements each read a page of rows, and on a busy machine
    # workers that each must fill their share of an ordered page cost far more than they save.
    options = ["-c max_parallel_workers_per_gather=0"]
    if settings.statement_timeout_s:
        options.append(f"-c statement_timeout={int(settings.statement_timeout_s * 1000)}")
    return {"autocommit": True, "connect_timeout": settings.connect_timeout_s, "options": " ".join(options)}


def _closed_by_server(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection was closed by the server (EOF or a FATAL is waiting to be read).

    An idle connection receives nothing unless asked (MAIE does not LISTEN), so anything
    readable means the server ended the session: restarted, shut down, or a backend killed.
    """
    if conn.closed or conn.broken:
        return True
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return bool(readable)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_loader("jsonb", _RawJsonLoader)


async def _configure_async(conn: psycopg.AsyncConnection[Any]) -> None:
    conn.adapters.register_loader("jsonb", _RawJsonLoader)


#: What a check raises for a connection the server closed.
_CLOSED = "the server closed the connection"


def _pool_options(settings: DatabaseSettings) -> dict[str, Any]:
    return {
        "kwargs": _options(settings),
        "min_size": settings.pool_min_size,
        "max_size": settings.pool_max_size,
        "timeout": settings.pool_timeout_s,
        # Give up a failing reconnection (and start afresh on demand) after about as long as a
        # request waits, so a server that came back is used within seconds, not minutes.
        "reconnect_timeout": max(settings.pool_timeout_s, 2.0),
        "open": False,
        "name": "maie-store",
    }


#: Seconds a health check waits for a connection.
PING_TIMEOUT_S = 2.0


class Database:
    """A blocking pool (the worker's), and the driver of store operations over it."""

    def __init__(self, url: str, settings: DatabaseSettings) -> None:
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo(url), configure=_configure, check=self._check, **_pool_options(settings)
        )
        self._open = threading.Lock()
        self._opened = False

    def run(self, work: Work[T]) -> T:
        """Run ``work``, in one transaction if it asks for one (retried when PostgreSQL broke a deadlock).

        Raises:
            StoreUnavailableError: if PostgreSQL cannot be reached (or stays deadlocked).
            NotFoundError: if a write refers to a record that is gone.
        """
        self._ensure_open()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.pool.connection() as conn:
                    if not work.transaction:
                        return self._drive(conn, work.make())
                    with conn.transaction():
                        return self._drive(conn, work.make())
            except _RETRY as exc:
                log.info("store.transaction_retried", attempt=attempt, reason=type(exc).__name__)
                if attempt == ATTEMPTS:
                    raise unavailable(exc) from exc
            except errors.ForeignKeyViolation as exc:
                raise NotFoundError(f"{work.what} not found") from exc
            except _DOWN as exc:
                raise unavailable(exc) from exc
        raise AssertionError  # pragma: no cover - the loop returns or raises

    @staticmethod
    def _drive(conn: psycopg.Connection[Any], op: Op[T]) -> T:
        try:
            statement = next(op)
            while True:
                statement = op.send(Database._execute(conn, statement))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]  # the generator's return value
        finally:
            op.close()

    @staticmethod
    def _execute(conn: psycopg.Connection[Any], statement: Statement) -> Rows:
        with conn.cursor() as cursor:
            if statement.many is not None:
                cursor.executemany(statement.sql, statement.many)
            else:
                cursor.execute(statement.sql, statement.params, prepare=statement.prepare)
            return Rows([] if cursor.description is None else cursor.fetchall(), cursor.rowcount)

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """Refuse a pooled connection the server closed, and every other one of the pool with it.

        A closed connection is closed here too, so the pool replaces it instead of keeping it;
        the others date from before the server went away, so the pool is drained at once rather
        than discovering them one by one (each with a back-off pause).
        """
        if _closed_by_server(conn):
            conn.close()
            self.pool.drain()
            log.info("store.reconnecting", reason=_CLOSED)
            raise psycopg.OperationalError(_CLOSED)

    def _ensure_open(self) -> None:
        if not self._opened:
            with self._open:
                self.pool.open(wait=False)
                self._opened = True

    def ping(self) -> bool:
        """Whether PostgreSQL answers."""
        try:
            self._ensure_open()
            with self.pool.connection(timeout=PING_TIMEOUT_S) as conn:
                conn.execute("SELECT 1")
        except _DOWN:
            return False
        return True

    def close(self) -> None:
        """Close every connection."""
        self.pool.close()


class AsyncDatabase:
    """An async pool (the API's), and the driver of store operations over it."""

    def __init__(self, url: str, settings: DatabaseSettings) -> None:
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            conninfo(url), configure=_configure_async, check=self._check, **_pool_options(settings)
        )
        self._opened = False

    async def run(self, work: Work[T]) -> T:
        """Run ``work``; see :meth:`Database.run`."""
        await self._ensure_open()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.pool.connection() as conn:
                    if not work.transaction:
                        return await self._drive(conn, work.make())
                    async with conn.transaction():
                        return await self._drive(conn, work.make())
            except _RETRY as exc:
                log.info("store.transaction_retried", attempt=attempt, reason=type(exc).__name__)
                if attempt == ATTEMPTS:
                    raise unavailable(exc) from exc
            except errors.ForeignKeyViolation as exc:
                raise NotFoundError(f"{work.what} not found") from exc
            except _DOWN as exc:
                raise unavailable(exc) from exc
        raise AssertionError  # pragma: no cover - the loop returns or raises

    @staticmethod
    async def _drive(conn: psycopg.AsyncConnection[Any], op: Op[T]) -> T:
        try:
            statement = next(op)
            while True:
                async with conn.cursor() as cursor:
                    if statement.many is not None:
                        await cursor.executemany(statement.sql, statement.many)
                    else:
                        await cursor.execute(statement.sql, statement.params, prepare=statement.prepare)
                    rows = Rows(
                        [] if cursor.description is None else await cursor.fetchall(), cursor.rowcount
                    )
                statement = op.send(rows)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]  # the generator's return value
        finally:
            op.close()

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Refuse a pooled connection the server closed; see :meth:`Database._check`."""
        if _closed_by_server(conn):
            await conn.close()
            await self.pool.drain()
            log.info("store.reconnecting", reason=_CLOSED)
            raise psycopg.OperationalError(_CLOSED)

    async def _ensure_open(self) -> None:
        # One event loop thread: no lock needed, and open() is safe to call again anyway.
        if not self._opened:
            await self.pool.open(wait=False)
            self._opened = True

    async def ping(self) -> bool:
        """Whether PostgreSQL answers."""
        try:
            await self._ensure_open()
            async with self.pool.connection(timeout=PING_TIMEOUT_S) as conn:
                await conn.execute("SELECT 1")
        except _DOWN:
            return False
        return True

    async def close(self) -> None:
        """Close every connection."""
        await self.pool.close()
