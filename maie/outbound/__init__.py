"""Outbound HTTP requests to URLs that clients choose (webhooks, recordings by URL).

- :mod:`maie.outbound.addresses`: which IP addresses may be reached, and the rule that refuses one.
- :mod:`maie.outbound.rules`: :class:`AddressRules`, the URL shape and address checks, with errors
  that name the host and the rule but never the resolved address.
- :mod:`maie.outbound.transport`: :class:`GuardedTransport`, an httpx transport that connects
  only to checked addresses (so DNS rebinding cannot redirect a request), and :func:`time_limit`.
- :mod:`maie.outbound.urls`: :func:`redact_url`, a URL fit to record and log.
"""

from maie.outbound.addresses import IPAddress, Verdict, classify, refusal_reason
from maie.outbound.rules import MAX_URL_LENGTH, AddressRules, Resolver, default_port, resolve
from maie.outbound.transport import GuardedBackend, GuardedTransport, deadline_passed, time_limit
from maie.outbound.urls import redact_url

__all__ = [
    "MAX_URL_LENGTH",
    "AddressRules",
    "GuardedBackend",
    "GuardedTransport",
    "IPAddress",
    "Resolver",
    "Verdict",
    "classify",
    "deadline_passed",
    "default_port",
    "redact_url",
    "refusal_reason",
    "resolve",
    "time_limit",
]
