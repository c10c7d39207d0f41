"""uvicorn's h11 protocol with deadlines for slow and idle clients, and a cap on open connections.

uvicorn 0.54 closes a kept-alive connection that stays idle after a response
(``timeout_keep_alive``), but sets no deadline before the first request, none while the request
line and headers trickle in, and none while a body does: a client that connects and sends
nothing, or sends a byte now and then, or announces a ``Content-Length`` it never sends, holds its
socket (and a file descriptor) for as long as it likes. Its ``limit_concurrency`` only answers 503
once a request has arrived, so idle sockets still pile up. This protocol adds, per connection:

- **headers**: the request line and headers must be complete within ``header_timeout_s`` of the
  connection opening (or of the previous response, on a kept-alive connection); else 408 (or a
  silent close if nothing at all came) and the connection is closed;
- **body**: the body must keep coming: no gap longer than ``body_timeout_s`` between two reads,
  and on average at least ``body_min_bytes_per_s`` after the first ``body_timeout_s`` (the rule of
  Apache's mod_reqtimeout: the deadline moves on by one second per ``body_min_bytes_per_s`` bytes
  received). Time during which MAIE itself is not reading (flow control paused, a client waiting
  for ``100 Continue``) does not count. A request whose body stops is closed; the application sees
  the client disconnect;
- **connections**: beyond ``max_connections`` open connections a new one gets 503 with
  ``Retry-After`` and is closed at once, before it can sit idle.

It also sends a response whose length is known (``Content-Length``) in one write, head and body
together, where uvicorn makes one write of each (:class:`_JoinedWrites`): on a busy host every
write to a local client is a system call that may hand the CPU to the client, and status polls
are small responses sent by the thousand. A streamed response (no ``Content-Length``: server-sent
events) still has its head written at once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

import h11
import msgspec
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    import asyncio

    from maie.config import ServerSettings

__all__ = ["ClientLimits", "GuardedH11Protocol", "guarded_protocol"]

log = structlog.get_logger(__name__)

#: Longest pause between two checks of a body deadline (it moves as bytes arrive).
_CHECK_S = 1.0


class ClientLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Deadlines and caps for HTTP clients (``MAIE_HTTP_*``)."""

    #: Seconds the request line and headers may take (MAIE_HTTP_HEADER_TIMEOUT_S).
    header_timeout_s: float
    #: Longest gap between two reads of a body, and the grace before its rate counts
    #: (MAIE_HTTP_BODY_TIMEOUT_S).
    body_timeout_s: float
    #: Lowest average rate of a body after the grace, in bytes per second (MAIE_HTTP_BODY_MIN_BYTES_PER_S).
    body_min_bytes_per_s: float
    #: Open connections served at once (MAIE_HTTP_MAX_CONNECTIONS).
    max_connections: int
    #: ``Retry-After`` of the 503 sent to connections over the cap.
    retry_after_s: int

    @classmethod
    def from_settings(cls, server: ServerSettings) -> ClientLimits:
        """The limits configured for the API."""
        return cls(
            header_timeout_s=server.http_header_timeout_s,
            body_timeout_s=server.http_body_timeout_s,
            body_min_bytes_per_s=server.http_body_min_bytes_per_s,
            max_connections=server.http_max_connections,
            retry_after_s=server.busy_retry_after_s,
        )


def _plain_response(status: int, reason: str, detail: str, *extra: tuple[str, str]) -> bytes:
    """A complete ``Connection: close`` response with MAIE's JSON error body, written by hand.

    The connection is not in a state where h11 would let us answer (no request yet, or half of one).
    """
    body = msgspec.json.encode({"detail": detail, "status_code": status})
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("connection", "close"),
        *extra,
    ]
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("ascii") + body


class _JoinedWrites:
    """A response cycle's view of the transport: the head of a sized response waits for its body.

    uvicorn writes a response's head when the app sends ``http.response.start`` and the body when
    it sends ``http.response.body``; an app sends a sized body straight after its start. The head
    of a response with a ``Content-Length`` is kept back and written with the next write (the body,
    or the empty end of a bodiless one), or before the transport closes.
    """

    __slots__ = ("_head", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started:
            self._started = True  # uvicorn's first write of a cycle is the response's head
            if b"\r\ncontent-length:" in data.lower():
                self._head = data
                return
        if self._head is not None:
            data, self._head = self._head + data, None
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the transport's other methods
        return getattr(self._transport, name)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus the deadlines and the connection cap of :class:`ClientLimits`."""

    #: Set on the subclass that :func:`guarded_protocol` makes.
    limits: ClassVar[ClientLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - uvicorn's own signature
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # "headers", "body" or None (nothing of the client's pending)
        self._started = 0.0  # when the phase started
        self._received = 0  # bytes received in the phase
        self._last_read = 0.0
        self._not_reading_s = 0.0  # seconds of the body phase during which MAIE did not read
        self._last_check = 0.0
        self._joined: object = None  # the last cycle given a joining transport

    # --- uvicorn's hooks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse a connection over the cap at once; otherwise start the header deadline."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("http.too_many_connections", open=len(self.connections), client=self._client())
            detail = (
                "the server has too many open connections (MAIE_HTTP_MAX_CONNECTIONS); "
                f"retry after {self.limits.retry_after_s} s"
            )
            transport.write(
                _plain_response(
                    503, "Service Unavailable", detail, ("retry-after", str(self.limits.retry_after_s))
                )
            )
            transport.close()
            return
        self._begin("headers")

    def data_received(self, data: bytes) -> None:
        """Count what arrived, let uvicorn parse it, then follow the request's state."""
        now = time.monotonic()
        self._received += len(data)
        self._last_read = now
        super().data_received(data)
        self._join_writes()
        self._follow()

    def on_response_complete(self) -> None:
        """After a response, a kept-alive connection waits for its next request's headers."""
        super().on_response_complete()
        self._join_writes()
        self._follow()

    def _join_writes(self) -> None:
        """Give a cycle uvicorn just made (its app has not run yet) the joining transport."""
        cycle = self.cycle
        if cycle is not None and cycle is not self._joined:
            self._joined = cycle
            cycle.transport = _JoinedWrites(self.transport)  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the deadline with the connection."""
        self._cancel()
        super().connection_lost(exc)

    # --- deadlines ---------------------------------------------------------------------------

    def _follow(self) -> None:
        """Move to the phase the client is in now, by h11's view of its side."""
        if self.transport.is_closing():
            self._cancel()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._phase != "headers" and (self.cycle is None or self.cycle.response_complete):
                self._begin("headers")
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._begin("body")
        else:  # the request is complete (DONE), or the connection is going away
            self._phase = None
            self._cancel()

    def _begin(self, phase: str) -> None:
        now = time.monotonic()
        self._phase = phase
        self._started = self._last_read = self._last_check = now
        self._received = 0
        self._not_reading_s = 0.0
        delay = (
            self.limits.header_timeout_s if phase == "headers" else min(_CHECK_S, self.limits.body_timeout_s)
        )
        self._arm(delay)

    def _arm(self, delay: float) -> None:
        self._cancel()
        self._timer = self.loop.call_later(max(0.0, delay), self._check)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        now = time.monotonic()
        if self._phase == "headers":
            self._headers_late()
        elif self._phase == "body":
            self._check_body(now)

    def _headers_late(self) -> None:
        limit = self.limits.header_timeout_s
        log.info("http.client_timeout", phase="headers", client=self._client(), received_bytes=self._received)
        if self._received:  # a request was on its way: say why it ends
            detail = (
                f"the request line and headers did not arrive within {limit:g} s (MAIE_HTTP_HEADER_TIMEOUT_S)"
            )
            self.transport.write(_plain_response(408, "Request Timeout", detail))
        self.transport.close()

    def _check_body(self, now: float) -> None:
        limits = self.limits
        if self._waiting_on_us():
            # MAIE is not reading (the app has not asked for more yet): the client cannot send.
            self._not_reading_s += now - self._last_check
            self._last_read = now
        self._last_check = now
        idle_until = self._last_read + limits.body_timeout_s
        rate_until = (
            self._started
            + self._not_reading_s
            + limits.body_timeout_s
            + self._received / limits.body_min_bytes_per_s
        )
        if now < idle_until and now < rate_until:
            self._arm(min(_CHECK_S, idle_until - now, rate_until - now))
            return
        log.info(
            "http.client_timeout",
            phase="body",
            reason="stalled" if now >= idle_until else "too slow",
            client=self._client(),
            received_bytes=self._received,
            seconds=round(now - self._started, 1),
        )
        # The app sees the client disconnect (uvicorn's connection_lost) and no response is owed.
        self.transport.close()

    def _waiting_on_us(self) -> bool:
        cycle = self.cycle
        return self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue)

    def _client(self) -> str | None:
        return f"{self.client[0]}:{self.client[1]}" if self.client else None


def guarded_protocol(limits: ClientLimits) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` class bound to ``limits``, for uvicorn's ``http=`` option."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})
