"""Outbound request rules: http(s) URLs only, and every address the host resolves to checked.

A URL chosen by a client (a webhook's ``callback_url``, a recording's ``url``) is a way to make the
server send requests into its own network (server-side request forgery). :class:`AddressRules`
says what such a request may reach and raises the caller's own error class when it may not, with
a message that names the host and the rule but never the address it resolved to: telling a client
that ``vm`` is ``127.0.0.1`` would turn the check into a DNS oracle for the internal network. The
address is logged instead, with the request or task id bound to the log context.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

import anyio
import httpx
import structlog

from maie.errors import MaieError, UnprocessableError
from maie.outbound.addresses import IPAddress, classify

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["MAX_URL_LENGTH", "SCHEMES", "AddressRules", "Resolver", "default_port", "resolve"]

log = structlog.get_logger(__name__)

#: Longest URL accepted.
MAX_URL_LENGTH: Final = 2048
#: The only schemes an outbound request may use.
SCHEMES: Final = frozenset({"http", "https"})

#: Resolves a host and port to addresses; raises :class:`socket.gaierror` when it cannot.
Resolver: TypeAlias = Callable[[str, int], list[IPAddress]]


def default_port(url: httpx.URL) -> int:
    """The port a URL connects to."""
    return url.port or (443 if url.scheme == "https" else 80)


def _addresses(infos: Sequence[tuple[object, ...]]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        if not isinstance(sockaddr, tuple):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to now, in the resolver's order (blocking).

    Raises:
        socket.gaierror: if the name cannot be resolved.
    """
    return _addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


@dataclass(frozen=True, kw_only=True)
class AddressRules:
    """What one kind of outbound request may reach, and how a refusal is worded and raised."""

    #: Allow loopback, private and shared addresses (never link-local or cloud metadata).
    allow_private: bool = False
    #: The request field named in messages (``url``, ``callback_url``).
    subject: str = "url"
    #: The setting that allows private addresses, named in refusals it would lift.
    setting: str = "MAIE_FETCH_ALLOW_PRIVATE"
    #: Raised for a refused address.
    refused: type[MaieError] = UnprocessableError
    #: Raised for a malformed or non-http(s) URL; unset means ``refused``.
    invalid: type[MaieError] | None = None
    #: Raised for a host with no address; unset means ``refused``.
    unresolvable: type[MaieError] | None = None
    #: Raised when the resolver fails for now (``EAI_AGAIN``); unset means ``unresolvable``.
    resolver_down: type[MaieError] | None = None
    #: Drop a ``#fragment`` (never sent to a server) instead of refusing the URL.
    drop_fragment: bool = False

    def parse_url(self, url: str) -> httpx.URL:
        """Check the shape of a URL: absolute http(s) with a host, not too long, no fragment.

        Raises:
            MaieError: ``invalid``, saying what is wrong.
        """
        error = self.invalid or self.refused
        if len(url) > MAX_URL_LENGTH:
            raise error(f"{self.subject} is longer than {MAX_URL_LENGTH} characters")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise error(f"{self.subject} is not a valid URL: {exc}") from None
        if parsed.scheme not in SCHEMES:
            shown = parsed.copy_with(username=None, password=None) if parsed.userinfo else url
            raise error(f"{self.subject} must be an http:// or https:// URL, got {str(shown)[:80]!r}")
        if not parsed.host:
            raise error(f"{self.subject} has no host")
        if parsed.fragment:
            if not self.drop_fragment:
                raise error(f"{self.subject} must not have a #fragment")
            parsed = parsed.copy_with(fragment=None)
        return parsed

    def check(self, host: str, addresses: Sequence[IPAddress]) -> None:
        """Refuse ``host`` unless every address it resolves to may be called.

        Raises:
            MaieError: ``unresolvable`` when there is no address, ``refused`` when one of them is
                refused; the message names the host and the rule, the log line the address too.
        """
        if not addresses:
            raise (self.unresolvable or self.refused)(f"{self.subject} host {host!r} resolves to no address")
        for address in addresses:
            verdict = classify(address)
            if verdict is None or (verdict.private and self.allow_private):
                continue
            log.warning(
                "outbound.refused", subject=self.subject, host=host, address=str(address), rule=verdict.rule
            )
            hint = (
                f"MAIE refuses those unless {self.setting}=true"
                if verdict.private
                else "MAIE never calls those, whatever its settings"
            )
            article = "an" if verdict.rule[0] in "aeiouAEIOU" else "a"
            raise self.refused(
                f"{self.subject} host {host!r} resolves to {article} {verdict.rule} address; {hint}",
                extra={"host": host, "rule": verdict.rule},
            )

    def _resolve_failed(self, host: str, exc: OSError | UnicodeError) -> MaieError:
        temporary = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
        kind = (self.resolver_down if temporary else None) or self.unresolvable or self.refused
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        if temporary:
            return kind(
                f"{self.subject} host {host!r} cannot be resolved for now ({reason}); try again later",
                extra={"host": host},
            )
        return kind(f"{self.subject} host {host!r} cannot be resolved ({reason}); check the name")

    def resolve(self, host: str, port: int, resolver: Resolver = resolve) -> list[IPAddress]:
        """Resolve ``host`` and check every address (blocking).

        Returns:
            The addresses, all allowed, in the resolver's order.

        Raises:
            MaieError: as :meth:`check`, or when the host cannot be resolved.
        """
        try:
            addresses = resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise self._resolve_failed(host, exc) from None
        self.check(host, addresses)
        return addresses

    async def check_url(self, url: str) -> httpx.URL:
        """Check a URL at submit time: its shape, then every address its host has now.

        Returns:
            The URL, parsed.

        Raises:
            MaieError: as :meth:`parse_url` and :meth:`resolve`.
        """
        parsed = self.parse_url(url.strip())
        try:
            infos = await anyio.getaddrinfo(parsed.host, default_port(parsed), type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise self._resolve_failed(parsed.host, exc) from None
        self.check(parsed.host, _addresses(infos))
        return parsed
