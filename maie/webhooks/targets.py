"""Which callback URLs MAIE will call: http(s) only, and never a private address unless allowed.

A callback URL is chosen by the client, so it is a way to make the server send requests into its
own network (server-side request forgery). The rules are the outbound ones every client-chosen
URL follows (:mod:`maie.outbound`): every address the host resolves to must be public unless the
operator sets ``MAIE_WEBHOOK_ALLOW_PRIVATE=true``, which allows loopback, private and shared
addresses but never link-local ones or a cloud metadata service. The check runs at submit time
and again at every delivery, which connects to the very address that passed, so a DNS answer that
changes in between (rebinding) cannot redirect it. Refusals name the host and the rule, never the
address the host resolved to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maie.errors import CallbackRefusedError
from maie.outbound import AddressRules

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx

    from maie.config import Settings
    from maie.outbound import IPAddress

__all__ = ["callback_rules", "check_addresses", "check_callback", "check_callback_url", "parse_callback_url"]


def callback_rules(*, allow_private: bool) -> AddressRules:
    """The outbound rules of webhooks, raising :class:`CallbackRefusedError`."""
    return AddressRules(
        allow_private=allow_private,
        subject="callback_url",
        setting="MAIE_WEBHOOK_ALLOW_PRIVATE",
        refused=CallbackRefusedError,
    )


def parse_callback_url(url: str) -> httpx.URL:
    """Check the shape of a callback URL.

    Raises:
        CallbackRefusedError: unless it is an absolute http(s) URL with a host, without fragment.
    """
    return callback_rules(allow_private=False).parse_url(url)


def check_addresses(host: str, addresses: Sequence[IPAddress], *, allow_private: bool) -> None:
    """Refuse ``host`` unless every address it resolves to may be called.

    Raises:
        CallbackRefusedError: if there is no address, or one of them is refused.
    """
    callback_rules(allow_private=allow_private).check(host, addresses)


async def check_callback_url(url: str, *, allow_private: bool) -> str:
    """Check a callback URL at submit time: shape, then every address its host has now.

    Returns:
        The URL, normalised.

    Raises:
        CallbackRefusedError: with what is wrong and what to do.
    """
    return str(await callback_rules(allow_private=allow_private).check_url(url))


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
