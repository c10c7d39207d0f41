"""Which callback URLs MAIE will call: http(s) only, and never a private address unless allowed.

A callback URL is chosen by the client, so it is a way to make the server send requests into its
own network (server-side request forgery). Every address its host resolves to must be public
(not loopback, private, link-local, shared, multicast or reserved) unless the operator sets
``MAIE_WEBHOOK_ALLOW_PRIVATE=true``. The check runs at submit time and again before every
delivery, and the delivery then connects to the very address that passed, so a DNS answer that
changes in between (rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

import anyio
import httpx

from maie.errors import CallbackRefusedError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from maie.config import Settings

__all__ = [
    "MAX_URL_LENGTH",
    "IPAddress",
    "check_addresses",
    "check_callback",
    "check_callback_url",
    "parse_callback_url",
    "refusal_reason",
    "resolve",
]

#: Longest callback URL accepted.
MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ALLOW_HINT = "MAIE refuses those unless MAIE_WEBHOOK_ALLOW_PRIVATE=true"


def parse_callback_url(url: str) -> httpx.URL:
    """Check the shape of a callback URL.

    Raises:
        CallbackRefusedError: unless it is an absolute http(s) URL with a host, without fragment.
    """
    if len(url) > MAX_URL_LENGTH:
        raise CallbackRefusedError(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise CallbackRefusedError(f"callback_url is not a valid URL: {exc}") from None
    if parsed.scheme not in {"http", "https"}:
        raise CallbackRefusedError(f"callback_url must be an http:// or https:// URL, got {url[:80]!r}")
    if not parsed.host:
        raise CallbackRefusedError(f"callback_url has no host: {url[:80]!r}")
    if parsed.fragment:
        raise CallbackRefusedError("callback_url must not have a #fragment")
    return parsed


def refusal_reason(address: IPAddress) -> str | None:
    """Why a webhook may not go to ``address`` by default, or None if it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return name
    return None if address.is_global else "not globally routable"


def check_addresses(host: str, addresses: Sequence[IPAddress], *, allow_private: bool) -> None:
    """Refuse ``host`` unless every address it resolves to may be called.

    Raises:
        CallbackRefusedError: if there is no address, or one of them is not public (and private
            targets are not allowed).
    """
    if not addresses:
        raise CallbackRefusedError(f"callback_url host {host!r} resolves to no address")
    if allow_private:
        return
    for address in addresses:
        reason = refusal_reason(address)
        if reason is not None:
            raise CallbackRefusedError(
                f"callback_url host {host!r} resolves to {address}, a {reason} address; {_ALLOW_HINT}",
                extra={"host": host, "address": str(address)},
            )


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
    """Every address ``host`` resolves to now (blocking).

    Raises:
        CallbackRefusedError: if it cannot be resolved.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise CallbackRefusedError(f"callback_url host {host!r} cannot be resolved: {exc}") from None
    return _addresses(infos)


async def check_callback_url(url: str, *, allow_private: bool) -> str:
    """Check a callback URL at submit time: shape, then every address its host has now.

    Returns:
        The URL, normalised.

    Raises:
        CallbackRefusedError: with what is wrong and what to do.
    """
    parsed = parse_callback_url(url.strip())
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = await anyio.getaddrinfo(parsed.host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise CallbackRefusedError(f"callback_url host {parsed.host!r} cannot be resolved: {exc}") from None
    check_addresses(parsed.host, _addresses(infos), allow_private=allow_private)
    return str(parsed)


async def check_callback(url: str, settings: Settings) -> str:
    """Check a request's ``callback_url`` against the server's webhook settings.

    Returns:
        The URL, normalised.

    Raises:
        CallbackRefusedError: if the server cannot sign webhooks (no ``MAIE_WEBHOOK_SECRET``), or
            the URL is refused by :func:`check_callback_url`.
    """
    if not settings.auth.webhook_secret:
        raise CallbackRefusedError(
            "callback_url needs signed webhooks and this server has no MAIE_WEBHOOK_SECRET; ask its "
            "operator to set one, or follow the task with GET /v1/status/{task_id}/events instead"
        )
    return await check_callback_url(url, allow_private=settings.webhook.allow_private)
