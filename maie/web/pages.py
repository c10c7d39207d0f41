"""The web app's pages: server-rendered shells that the browser fills from the ``/v1`` API.

The server never sees the API key (it stays in the browser's ``sessionStorage``), so a page holds
no tenant data: it carries the layout, the controls this server supports (see
:mod:`maie.web.features`) and the scripts that talk to the API like any other client.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.response import Template

from maie import __version__
from maie.web.features import api_features

if TYPE_CHECKING:
    from litestar.params import FromPath
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from maie.config import Settings

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "SecurityHeadersMiddleware", "WebController"]

#: Scripts and styles only from this server's files: no inline script, no ``eval``, no plug-ins,
#: no framing. Trusted Types make any assignment of a string to ``innerHTML`` and its kin throw,
#: so text from a recording or a user can only ever reach the page as text.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
)
#: Sent with every page and static file of the web app.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeadersMiddleware(ASGIMiddleware):
    """Puts :data:`SECURITY_HEADERS` on every answer of the routes it wraps.

    A middleware rather than a router's ``response_headers``: static files are answered by an
    ASGI response that layered headers never reach.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Add the headers to the start of the answer."""

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await next_app(scope, receive, send_secured)


def _page(request: Request[Any, Any, Any], name: str, status_code: int = 200, **context: str) -> Template:
    settings: Settings = request.app.state.services.settings
    features = api_features(request.app, llm=settings.llm.backend != "none")
    return Template(
        template_name=f"{name}.html",
        status_code=status_code,
        context={
            "page": name,
            "version": __version__,
            "features": msgspec.json.encode(features).decode(),
            **context,
        },
        headers={"Cache-Control": "no-cache"},
    )


class WebController(Controller):
    """Sign-in, the library, uploads and a task's page."""

    include_in_schema = False

    @get("/", name="web.library")
    async def library(self, request: Request[Any, Any, Any]) -> Template:
        """The tenant's recordings, newest first, with search."""
        return _page(request, "library")

    @get("/sign-in", name="web.sign_in")
    async def sign_in(self, request: Request[Any, Any, Any]) -> Template:
        """Ask for the API key."""
        return _page(request, "sign_in")

    @get("/upload", name="web.upload")
    async def upload(self, request: Request[Any, Any, Any]) -> Template:
        """Send recordings."""
        return _page(request, "upload")

    @get("/tasks/{task_id:str}", name="web.task")
    async def task(self, request: Request[Any, Any, Any], task_id: FromPath[str]) -> Template:
        """One task: live progress, then transcript, audio, speakers and summary."""
        try:
            uuid.UUID(task_id)
        except ValueError:
            return _page(request, "not_found", status_code=404)
        return _page(request, "task", task_id=task_id)
