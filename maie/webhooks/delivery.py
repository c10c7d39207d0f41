"""One HTTP attempt at a webhook: check the URL, connect to a checked address, POST.

The connection goes through :class:`~maie.outbound.GuardedTransport`: the host is resolved and
every address checked right before connecting, and the request goes to one of those addresses
with the original ``Host`` header and TLS server name, so what was checked is what is called.
Redirects are not followed (a redirect could point anywhere) and the answer's body is never read:
only the status code counts. The whole attempt, connect to answer, is held to ``timeout_s``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, NamedTuple

import httpx

from maie.outbound import GuardedTransport, resolve, time_limit
from maie.webhooks.targets import callback_rules

if TYPE_CHECKING:
    from collections.abc import Mapping

    from maie.outbound import Resolver

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

    def __init__(self, *, timeout_s: float, allow_private: bool, resolver: Resolver = resolve) -> None:
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self._rules = callback_rules(allow_private=allow_private)
        # trust_env=False: a proxy from the environment would make the address check meaningless.
        self._client = httpx.Client(
            timeout=timeout_s,
            follow_redirects=False,
            trust_env=False,
            transport=GuardedTransport(self._rules, resolver=resolver),
        )

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Attempt:
        """POST ``body`` to ``url`` once.

        Network errors and non-2xx answers are returned as a failed :class:`Attempt`.

        Raises:
            CallbackRefusedError: if the URL is not allowed (now): a malformed URL, a host that
                does not resolve, or one that resolves to a refused address. Retrying cannot help.
        """
        parsed = self._rules.parse_url(url)
        started = time.perf_counter()
        try:
            with (
                time_limit(self.timeout_s),
                self._client.stream("POST", parsed, content=body, headers=headers) as response,
            ):
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
