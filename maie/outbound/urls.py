"""URLs as MAIE records and logs them: without credentials.

A recording's URL is kept on its task (and written to logs) so that a result says where its audio
came from. Credentials must not travel with it. ``user:password@`` is removed, the ``#fragment``
too, and the *values* of query parameters whose names suggest a secret (pre-signed links carry
them: ``X-Amz-Signature``, ``X-Goog-Credential``, Azure's ``sig``, ``token``, ``api_key``...)
are replaced by ``REDACTED``. Other parameters are kept, since they often name the resource
(``?id=...``, ``?dl=1``). The rule is by name, so an unusual secret parameter can slip through:
clients should prefer links that need no secret, or headers (phase 2 may add them).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl, urlencode

import httpx

__all__ = ["REDACTED", "redact_url"]

#: What a secret query value is replaced with.
REDACTED: Final = "REDACTED"

#: Query parameter names (case-insensitive, anywhere in the name) whose values are secrets.
_SECRET_NAME: Final = re.compile(
    r"^x-(amz|goog|ms)-|sig|token|key|secret|pass|auth|cred|session|jwt|policy|hmac|otp|code",
    re.IGNORECASE,
)


def redact_url(url: str | httpx.URL) -> str:
    """The URL without userinfo, fragment or secret query values.

    Args:
        url: an absolute URL (as text or parsed).

    Returns:
        The URL to record or log; a URL that does not parse is reduced to ``<invalid URL>``.
    """
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
    except httpx.InvalidURL:
        return "<invalid URL>"
    parsed = parsed.copy_with(username=None, password=None, fragment=None)
    if not parsed.query:
        return str(parsed)
    pairs = parse_qsl(parsed.query.decode("ascii", "replace"), keep_blank_values=True)
    cleaned = [(name, REDACTED if _SECRET_NAME.search(name) else value) for name, value in pairs]
    return str(parsed.copy_with(query=urlencode(cleaned, safe="/:").encode("ascii")))
