"""Store operations written once and run by either driver: blocking (worker) or async (API).

An operation is a generator: it yields the SQL :class:`Statement` it needs next, receives its
:class:`Rows`, and returns its value. It does no I/O itself, so the worker's blocking store and
the API's async store run the very same logic (:mod:`maie.store.sql.database` drives it over a
psycopg connection). A :class:`Work` pairs an operation's factory with how it must run: inside a
transaction, or statement by statement in autocommit (one round trip for a single read).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeAlias, TypeVar

import msgspec
from psycopg.types.json import Jsonb

from maie.errors import NotFoundError

__all__ = [
    "Op",
    "Params",
    "Rows",
    "Statement",
    "Work",
    "clone",
    "decode",
    "decode_optional",
    "jsonb",
    "plain_text",
]

T = TypeVar("T")
StructT = TypeVar("StructT", bound=msgspec.Struct)

#: Parameters of one statement: positional (``%s``) or named (``%(name)s``).
Params: TypeAlias = Sequence[Any] | Mapping[str, Any]


class Statement(NamedTuple):
    """One SQL statement to run, with its parameters (or ``many`` parameter sets).

    ``prepare=False`` keeps the driver from preparing it: PostgreSQL then plans each execution
    for its own parameters, where a generic plan of a prepared statement would be badly wrong
    (full-text matches, whose selectivity ranges from one row to most rows, depend on the query).
    """

    sql: Any  # LiteralString or psycopg.sql.Composed
    params: Params | None = None
    many: Sequence[Params] | None = None
    prepare: bool | None = None


class Rows(NamedTuple):
    """What a statement returned: its rows (empty without a result) and the rows it touched."""

    rows: list[tuple[Any, ...]]
    rowcount: int


#: An operation that returns ``T``.
Op: TypeAlias = Generator[Statement, Rows, T]


class Work(Generic[T]):
    """An operation ready to run.

    Args:
        make: Builds the operation; called again when a transaction is retried after a deadlock,
            so it must not depend on what an earlier attempt did.
        transaction: Run in one transaction (rolled back if the operation raises): every write
            of more than one statement, and reads that set planner options for themselves.
        what: Names the record a foreign-key violation refers to ("task t1"), for NotFoundError.
    """

    __slots__ = ("make", "transaction", "what")

    def __init__(self, make: Callable[[], Op[T]], *, transaction: bool, what: str = "task") -> None:
        self.make = make
        self.transaction = transaction
        self.what = what


_encoder = msgspec.json.Encoder()
# A NUL escape at an even count of backslashes (an odd count is an escaped backslash before "u0000").
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def jsonb(value: msgspec.Struct) -> Jsonb:
    """``value`` encoded for a JSONB column.

    PostgreSQL cannot store the NUL character in text or JSONB; one that reached a transcript (a
    model's output) is stored as U+FFFD instead of making the whole write fail.
    """
    data = _encoder.encode(value)
    if b"\\u0000" in data:
        data = _NUL_ESCAPE.sub(rb"\1\\ufffd", data)
    return Jsonb(data, dumps=_identity)


def _identity(data: object) -> bytes:
    assert isinstance(data, bytes)  # noqa: S101 - jsonb() only wraps bytes
    return data


def clone(value: StructT) -> StructT:
    """A deep copy of ``value`` (a change mutates the copy; the original is kept to compare)."""
    return msgspec.json.decode(_encoder.encode(value), type=type(value))


def plain_text(text: str) -> str:
    """``text`` fit for a text column: NUL (which PostgreSQL refuses) becomes U+FFFD."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def decode(data: bytes | None, kind: type[StructT], what: str) -> StructT:
    """Decode a JSONB value read as raw bytes.

    Raises:
        NotFoundError: naming ``what`` when there was no row.
    """
    if data is None:
        raise NotFoundError(f"{what} not found")
    return msgspec.json.decode(data, type=kind)


def decode_optional(data: bytes | None, kind: type[StructT]) -> StructT | None:
    """Decode a JSONB value read as raw bytes, or None when there was no row."""
    return None if data is None else msgspec.json.decode(data, type=kind)
