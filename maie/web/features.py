"""What this server's API can do, found in its own routes: the web app shows only what works.

Speakers, deletion and search arrive as separate pieces of the API. Rather than a version number,
the pages look at the routes the app actually has (and the submission fields it accepts), so a
control appears exactly when its endpoint exists.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec
from litestar.routes import HTTPRoute

from maie.schemas import SubmissionOptions

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ["ENDPOINTS", "api_features"]

#: Each optional capability and the route (method, path with ``{}`` for parameters) it needs.
ENDPOINTS = {
    "search": ("GET", "/v1/search"),
    "delete": ("DELETE", "/v1/tasks/{}"),
    "rename_speakers": ("PATCH", "/v1/tasks/{}/speakers"),
    "rttm": ("GET", "/v1/tasks/{}/transcript.rttm"),
    "audio": ("POST", "/v1/tasks/{}/audio/link"),
    "resummarize": ("POST", "/v1/tasks/{}/summaries"),
    "me": ("GET", "/v1/me"),
}
_PARAMETER = re.compile(r"\{[^}]*\}")


def _routes(app: Litestar) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, parameters written ``{}``, without a trailing slash."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            path = _PARAMETER.sub("{}", route.path).rstrip("/") or "/"
            found.update((method, path) for method in route.methods)
    return found


def api_features(app: Litestar, *, llm: bool) -> dict[str, bool]:
    """The optional capabilities of ``app``'s API, by name.

    Args:
        app: The running application.
        llm: Whether an LLM backend is configured (clean transcripts and summaries need one).
    """
    routes = _routes(app)
    features = {name: endpoint in routes for name, endpoint in ENDPOINTS.items()}
    fields = {field.encode_name for field in msgspec.structs.fields(SubmissionOptions)}
    features["diarize"] = "diarize" in fields
    features["llm"] = llm
    return features
