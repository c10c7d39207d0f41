"""An httpx transport that connects only to checked addresses, within an optional deadline.

The check and the connection are one step: httpcore asks its network backend to connect to a
host, and :class:`GuardedBackend` resolves that host itself, checks every address with
:class:`~maie.outbound.rules.AddressRules` and connects to one of those very addresses. A DNS
answer that changes between a check and the connection (rebinding) therefore cannot redirect the
request, each redirect hop is checked when its connection opens, and nothing else changes: the
``Host`` header, the TLS server name and the certificate check all keep the URL's host name.

A deadline set with :func:`time_limit` bounds every socket operation of the requests made under
it, so a server that trickles headers or body cannot hold a request past it (httpx's own timeouts
only bound each operation). It lives in a context variable: each thread, and each yt-dlp call made
from the thread, sees its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from typing import TYPE_CHECKING, Any, TypeVar

import httpcore
import httpx

from maie.outbound.rules import resolve

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterable, Iterator

    from maie.outbound.rules import AddressRules, Resolver

__all__ = ["GuardedBackend", "GuardedTransport", "deadline_passed", "time_limit"]


class _Deadline:
    """One :func:`time_limit`: when it ends, and whether an operation already ran into it."""

    __slots__ = ("at", "expired")

    def __init__(self, at: float) -> None:
        self.at = at
        self.expired = False


_deadline: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar(
    "maie_outbound_deadline", default=None
)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Bound every outbound socket operation in this block (and this context) to ``seconds`` from now.

    Nested limits keep the earlier deadline.
    """
    outer = _deadline.get()
    at = time.monotonic() + seconds
    token = _deadline.set(_Deadline(at if outer is None else min(outer.at, at)))
    try:
        yield
    finally:
        _deadline.reset(token)


def deadline_passed() -> bool:
    """Whether the current :func:`time_limit` has run out (or cut an operation short)."""
    deadline = _deadline.get()
    return deadline is not None and (deadline.expired or time.monotonic() >= deadline.at)


_T = TypeVar("_T")


def _within(
    operation: Callable[[float | None], _T], timeout: float | None, expired: type[httpcore.TimeoutException]
) -> _T:
    """Run ``operation(timeout)`` with the timeout cut to what is left of the current deadline.

    A timeout that came from the deadline, not from the operation's own timeout, marks the deadline
    expired, so :func:`deadline_passed` tells the two apart whatever the clocks' granularity.
    """
    deadline = _deadline.get()
    if deadline is None:
        return operation(timeout)
    left = deadline.at - time.monotonic()
    if left <= 0:
        deadline.expired = True
        msg = "the time limit of the request ran out"
        raise expired(msg)
    if timeout is not None and timeout <= left:
        return operation(timeout)
    try:
        return operation(left)
    except httpcore.TimeoutException:
        deadline.expired = True
        raise


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the current deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _within(lambda t: self._inner.read(max_bytes, t), timeout, httpcore.ReadTimeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _within(lambda t: self._inner.write(buffer, t), timeout, httpcore.WriteTimeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = _within(
            lambda t: self._inner.start_tls(ssl_context, server_hostname, t), timeout, httpcore.ConnectTimeout
        )
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:  # noqa: ANN401 - httpcore's signature
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, connecting only to addresses the rules allow."""

    def __init__(self, rules: AddressRules, resolver: Resolver = resolve) -> None:
        self.rules = rules
        self._resolve = resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve ``host``, check every address, connect to the first one that answers.

        Raises:
            MaieError: the rules' error when the host is refused (nothing is connected).
            httpcore.ConnectError: when no allowed address can be reached.
        """
        addresses = self.rules.resolve(host, port, self._resolve)
        failure: Exception = httpcore.ConnectError(f"{host} has no address to connect to")
        for address in addresses:
            try:
                stream = _within(
                    functools.partial(
                        self._inner.connect_tcp,
                        str(address),
                        port,
                        local_address=local_address,
                        socket_options=socket_options,
                    ),
                    timeout,
                    httpcore.ConnectTimeout,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream)
        raise failure

    def connect_unix_socket(
        self,
        path: str,  # noqa: ARG002 - httpcore's signature
        timeout: float | None = None,  # noqa: ARG002
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,  # noqa: ARG002
    ) -> httpcore.NetworkStream:
        """Refuse: an outbound request never goes to a local socket."""
        msg = "outbound requests do not use unix sockets"
        raise httpcore.ConnectError(msg)

    def sleep(self, seconds: float) -> None:
        """Sleep (httpcore's retry back-off; MAIE's transports do not retry)."""
        time.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's HTTP transport over a :class:`GuardedBackend`, with no proxy and no retries.

    ``httpx.HTTPTransport`` takes no network backend, so this builds the connection pool it would
    build, with one; everything else (request mapping, errors, streaming) is httpx's own.
    """

    def __init__(
        self,
        rules: AddressRules,
        *,
        resolver: Resolver = resolve,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=10, max_keepalive_connections=5),  # noqa: B008
    ) -> None:
        # No super().__init__(): it would build a pool (and an SSL context) only to be replaced.
        self.backend = GuardedBackend(rules, resolver)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )
