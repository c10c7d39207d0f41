"""One HTTP attempt at a webhook: resolve, check, connect to the checked address, POST.

The host is resolved and every address checked (:mod:`maie.webhooks.targets`) right before the
request, and the request then goes to that address with the original ``Host`` header (and TLS
server name), so what was checked is what is called. Redirects are not followed (a redirect could
point anywhere) and the answer's body is never read: only the status code counts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, NamedTuple

import httpx

from maie.webhooks.targets import check_addresses, parse_callback_url, resolve

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from maie.webhooks.targets import IPAddress

__all__ = ["Attempt", "WebhookPoster"]


class Attempt(NamedTuple):
    """What one attempt got: the receiver's status code, or why there was none."""

    status_code: int | None
    error: str | None
    duration_s: float

    @property
    def ok(self) -> bool:
        """Whether the receiver took the event (any 2xx answer)."""
        return self.status_code is not None and 200 <= self.status_code < 300  # noqa: PLR2004 - HTTP classes


class WebhookPoster:
    """Posts signed events; one pooled HTTP client per worker process."""

    def __init__(
        self,
        *,
        timeout_s: float,
        allow_private: bool,
        resolver: Callable[[str, int], list[IPAddress]] = resolve,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.allow_private = allow_private
        self._resolve = resolver
        # trust_env=False: a proxy from the environment would make the address check meaningless.
        self._client = httpx.Client(
            timeout=timeout_s, follow_redirects=False, trust_env=False, transport=transport
        )

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Attempt:
        """POST ``body`` to ``url`` once.

        Network errors and non-2xx answers are returned as a failed :class:`Attempt`.

        Raises:
            CallbackRefusedError: if the URL is not allowed (now): a malformed URL, a host that
                does not resolve, or one that resolves to a private address. Retrying cannot help.
        """
        parsed = parse_callback_url(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        addresses = self._resolve(parsed.host, port)
        check_addresses(parsed.host, addresses, allow_private=self.allow_private)
        pinned = parsed.copy_with(host=str(addresses[0]))
        host_header = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
        extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
        started = time.perf_counter()
        try:
            with self._client.stream(
                "POST",
                pinned,
                content=body,
                headers={**headers, "Host": host_header},
                extensions=extensions,
            ) as response:
                status = response.status_code
        except httpx.HTTPError as exc:
            return Attempt(None, f"{type(exc).__name__}: {exc}"[:300], time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        if 200 <= status < 300:  # noqa: PLR2004 - HTTP classes
            return Attempt(status, None, elapsed)
        return Attempt(status, f"the receiver answered HTTP {status}", elapsed)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
