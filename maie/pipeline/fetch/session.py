"""One fetch's HTTP: a guarded client, redirects followed by hand, errors mapped, bodies bounded.

Every connection goes through :class:`~maie.outbound.GuardedTransport`, so each hop of a redirect
chain is checked when its connection opens (and its URL's scheme before that). httpx's own
redirect following is off: the hops are counted here and a chain longer than ``max_redirects``
fails. Bodies are streamed and counted as they arrive: a ``Content-Length`` beyond the limit is
refused before the body is read, a body that grows past it is cut, and a transfer slower than
``min_bytes_per_s`` over a ``stall_timeout_s`` window is abandoned. httpx's read timeout catches a
server that sends nothing at all; the fetch's :func:`~maie.outbound.time_limit` catches one that
outlasts the total time.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from typing import TYPE_CHECKING, Final, Self

import httpx

from maie.errors import (
    FetchConnectionError,
    FetchHttpError,
    FetchHttpUnavailableError,
    FetchTimeoutError,
    FetchTlsError,
    FetchTooLargeError,
    FetchTooManyRedirectsError,
    FetchTooSlowError,
)
from maie.outbound import GuardedTransport, deadline_passed, resolve
from maie.pipeline.fetch.options import fetch_rules

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path
    from types import TracebackType

    from maie.errors import MaieError
    from maie.outbound import Resolver
    from maie.pipeline.fetch.options import FetchLimits, FetchOptions

__all__ = ["FetchSession"]

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
#: Answers that may pass by themselves: the fetch is retried later.
_RETRYABLE: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
_MIB: Final = 1024 * 1024


def _mib(size: int) -> str:
    return f"{size / _MIB:.1f} MiB"


def _certificate_failed(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _RateGuard:
    """Fails a transfer whose bytes in a window of ``window_s`` average below ``min_bytes_per_s``."""

    def __init__(self, min_bytes_per_s: int, window_s: float, host: str) -> None:
        self.min_bytes_per_s = min_bytes_per_s
        self.window_s = window_s
        self.host = host
        self._start = time.monotonic()
        self._bytes = 0

    def add(self, size: int) -> None:
        self._bytes += size
        elapsed = time.monotonic() - self._start
        if elapsed < self.window_s:
            return
        if self._bytes < self.min_bytes_per_s * elapsed:
            raise FetchTooSlowError(
                f"{self.host!r} sent {self._bytes} bytes in {elapsed:.0f} s, slower than the "
                f"{self.min_bytes_per_s} bytes/s MAIE waits for; try a faster source"
            )
        self._start, self._bytes = time.monotonic(), 0


class FetchSession:
    """The HTTP client of one fetch; close it (or use it as a context manager) when done."""

    def __init__(self, options: FetchOptions, *, resolver: Resolver = resolve) -> None:
        self.limits: FetchLimits = options.limits
        self.rules = fetch_rules(allow_private=options.allow_private)
        #: Redirects followed so far, over every request of the session.
        self.redirects = 0
        limits = options.limits
        self.client = httpx.Client(
            transport=GuardedTransport(self.rules, resolver=resolver),
            timeout=httpx.Timeout(
                connect=limits.connect_timeout_s,
                read=limits.stall_timeout_s,
                write=limits.stall_timeout_s,
                pool=limits.connect_timeout_s,
            ),
            follow_redirects=False,
            # A proxy from the environment would make the address checks meaningless.
            trust_env=False,
            headers={"User-Agent": options.user_agent},
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection."""
        self.client.close()

    def error_of(self, exc: httpx.HTTPError, host: str) -> MaieError:
        """The fetch error an httpx error stands for (timeouts, refused or broken connections)."""
        limits = self.limits
        if isinstance(exc, httpx.TimeoutException):
            if deadline_passed():
                return FetchTooSlowError(
                    f"fetching from {host!r} took longer than the {limits.total_timeout_s:.0f} s MAIE "
                    "allows; try a faster source or a shorter recording"
                )
            if isinstance(exc, httpx.ConnectTimeout):
                return FetchTimeoutError(
                    f"{host!r} did not accept a connection within {limits.connect_timeout_s} s"
                )
            return FetchTimeoutError(f"{host!r} sent nothing for {limits.stall_timeout_s} s (stalled)")
        if isinstance(exc, httpx.ConnectError) and _certificate_failed(exc):
            return FetchTlsError(
                f"the TLS certificate of {host!r} cannot be verified; use a host with a valid one"
            )
        return FetchConnectionError(f"the connection to {host!r} failed ({type(exc).__name__}: {exc})"[:300])

    def _send(
        self, method: str, url: httpx.URL, headers: Mapping[str, str] | None, content: bytes | None
    ) -> httpx.Response:
        request = self.client.build_request(method, url, headers=headers, content=content)
        try:
            return self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self.error_of(exc, url.host) from None

    @contextlib.contextmanager
    def open(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> Iterator[httpx.Response]:
        """Send a request and follow its redirects; yield the final answer, body unread.

        httpx errors raised while the caller reads the body inside the block are mapped too.

        Raises:
            FetchInvalidUrlError: a URL (or a redirect's) that is not http(s).
            FetchRefusedAddressError: a host (or a redirect's) that resolves to a refused address.
            FetchTooManyRedirectsError: more than ``max_redirects`` hops.
            FetchTimeoutError, FetchTooSlowError, FetchConnectionError, FetchTlsError: as
                :meth:`error_of`.
        """
        target = self.rules.parse_url(url)
        hops = 0
        response = self._send(method, target, headers, content)
        while response.status_code in _REDIRECTS and "location" in response.headers:
            response.close()
            hops += 1
            if hops > self.limits.max_redirects:
                raise FetchTooManyRedirectsError(
                    f"{target.host!r} redirected more than {self.limits.max_redirects} times; "
                    "give the final URL"
                )
            target = self.rules.parse_url(str(target.join(response.headers["location"])))
            if response.status_code == 303 or (response.status_code in {301, 302} and method == "POST"):  # noqa: PLR2004
                method, content = "GET", None
            response = self._send(method, target, headers, content)
        self.redirects += hops
        try:
            yield response
        except httpx.HTTPError as exc:
            raise self.error_of(exc, target.host) from None
        finally:
            response.close()

    @staticmethod
    def raise_for_status(response: httpx.Response) -> None:
        """Refuse a non-2xx answer.

        Raises:
            FetchHttpUnavailableError: for answers that may pass (503, 502, 429...): retried later.
            FetchHttpError: for the others (404, 403, 410...): retrying cannot help.
        """
        status = response.status_code
        if 200 <= status < 300:  # noqa: PLR2004 - HTTP classes
            return
        host = response.url.host
        if status in _RETRYABLE:
            raise FetchHttpUnavailableError(
                f"{host!r} answered HTTP {status} {response.reason_phrase}; MAIE tries again later",
                http_status=status,
            )
        raise FetchHttpError(
            f"{host!r} answered HTTP {status} {response.reason_phrase}; check that the link works "
            "without a login (MAIE sends no cookies or credentials of yours)",
            http_status=status,
        )

    def _chunks(self, response: httpx.Response, max_bytes: int) -> Iterator[bytes]:
        """The body, decoded, refused past ``max_bytes`` and below the minimum rate."""
        host = response.url.host
        stated = response.headers.get("content-length", "")
        if stated.isdigit() and int(stated) > max_bytes:
            raise FetchTooLargeError(
                f"{host!r} says the file is {_mib(int(stated))}, over the {_mib(max_bytes)} MAIE accepts"
            )
        guard = _RateGuard(self.limits.min_bytes_per_s, self.limits.stall_timeout_s, host)
        total = 0
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > max_bytes:
                raise FetchTooLargeError(
                    f"the file at {host!r} is larger than the {_mib(max_bytes)} MAIE accepts"
                )
            guard.add(len(chunk))
            yield chunk

    def read(self, response: httpx.Response, max_bytes: int) -> bytes:
        """The whole body of a small answer (a web page), at most ``max_bytes``."""
        return b"".join(self._chunks(response, max_bytes))

    def save(self, response: httpx.Response, path: Path) -> int:
        """Write the body to ``path`` (created or truncated), at most ``max_bytes``.

        Returns:
            The number of bytes written.
        """
        written = 0
        with path.open("wb") as out:
            for chunk in self._chunks(response, self.limits.max_bytes):
                out.write(chunk)
                written += len(chunk)
        return written
