"""Request ids: one per HTTP request, on its response, in its log lines and on the task it creates.

A client (or a proxy in front of MAIE) may send its own ``X-Request-ID``; a sane one (letters,
digits and ``._:/+=@-``, at most 128 characters) is kept, so ids can be followed across systems.
Anything else is replaced by a fresh id rather than refused: a bad correlation header is no reason
to fail an upload. The id is bound into the structlog context for the whole request, stored on a
task it creates (``TaskRecord.request_id``) and carried in the task's messages, so the worker's
lines for that task carry it too.

The middleware also writes one ``http.request`` line per request with its status and duration:
at ``info``, or ``debug`` for successful reads, which pollers send by the thousand.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import time
from typing import TYPE_CHECKING, Any, Final

import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestIdMiddleware",
    "accept_request_id",
    "add_request_id_header",
    "request_id_of",
]

log = structlog.get_logger(__name__)

#: Header that carries the request id, both ways.
REQUEST_ID_HEADER: Final = "X-Request-ID"
#: The header's name as it appears in the ASGI scope.
_HEADER_KEY: Final = REQUEST_ID_HEADER.lower().encode("latin-1")
#: What an incoming id may look like to be kept.
_SANE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")
#: Key of the id in the ASGI scope's state.
_STATE_KEY: Final = "maie_request_id"
#: Methods whose successful answers are logged at debug level only.
_QUIET_METHODS: Final = frozenset({"GET", "HEAD"})
#: Below this status an answer counts as successful.
_FIRST_ERROR_STATUS: Final = 400


class _Ids:
    """Fresh request ids: this process's random half, then a counter (32 hex digits in all).

    Unique like a random UUID's for correlation, without reading the system's randomness per
    request (a system call on every poll). A forked child draws a random half of its own.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.process = secrets.token_hex(8)
        self.counter = itertools.count(secrets.randbits(63))

    def next(self) -> str:
        return f"{self.process}{next(self.counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


_ids = _Ids()


def accept_request_id(value: str | None) -> str:
    """The client's request id if it is sane, else a new one (32 hex digits)."""
    if value and _SANE_ID.fullmatch(value):
        return value
    return _ids.next()


def request_id_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The id :class:`RequestIdMiddleware` gave this request."""
    value = connection.scope.get("state", {}).get(_STATE_KEY)
    return value if isinstance(value, str) else None


def _header(scope: Scope, name: bytes) -> str | None:
    # The raw ASGI list, lower-case names: a ``Headers`` built per request costs more than this scan.
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _assign(scope: Scope) -> str:
    state = scope.setdefault("state", {})
    request_id = state.get(_STATE_KEY)
    if not isinstance(request_id, str):
        request_id = state[_STATE_KEY] = accept_request_id(_header(scope, _HEADER_KEY))
    return request_id


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """App-level ``before_send`` hook: put the request's id on the response.

    It runs for every response, also those Litestar's router answers before any middleware runs
    (404 for an unknown path, 405 for a wrong method). A coroutine although it awaits nothing:
    Litestar runs a plain function hook in a worker thread, for every message sent.
    """
    if message["type"] == "http.response.start" and scope["type"] == ScopeType.HTTP:
        MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = _assign(scope)


class RequestIdMiddleware(ASGIMiddleware):
    """Gives each routed HTTP request its id, binds it into the log context and logs the request.

    The header itself is added by :func:`add_request_id_header`, which sees every response.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Choose the id, bind it for the request, and log the request once answered."""
        request_id = _assign(scope)
        method = str(scope.get("method", ""))
        status = [500]  # what the client gets if the app raises past every handler

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        started = time.perf_counter()
        # Tokens rather than ``bound_contextvars``, which copies the whole context twice per request.
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await next_app(scope, receive, send_noting_status)
        finally:
            quiet = method in _QUIET_METHODS and status[0] < _FIRST_ERROR_STATUS
            (log.debug if quiet else log.info)(
                "http.request",
                method=method,
                path=scope["path"],
                status=status[0],
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.reset_contextvars(**tokens)
