"""The short path of a status poll: GET /v1/status/{id} answered without the route's framework work.

Integrations poll status by the thousand, and for a poll Litestar's per-request work around the
handler (a ``Request``, the guards each called with a copy of the route handler, the signature
model, a ``Response`` turned into an ``ASGIResponse``) cost more than reading the task. This
middleware sits on the status route, inside the request-id and metrics middlewares, and answers a
GET that presents a known key with the route's own pieces: the key as the guard reads it
(:func:`~maie.api.guards.presented_key`, :func:`~maie.api.guards.tenant_for_key`), the rate limit
as the guard counts it, and the handler's answer (:func:`~maie.api.routes.status.status_answer`).
What these raise (429, 404 for an unknown, malformed or other tenant's id, 503 for a store that
cannot answer) becomes a response through the same exception handling as the route's, so the
response, its request id, its log line and its metrics are the route's, errors included.

A request without a known key, or with another method, goes to the route untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from litestar._asgi.utils import wrap_in_exception_handler
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from maie.api.guards import presented_key, tenant_for_key
from maie.errors import UnauthorizedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from litestar.types import ASGIApp, Receive, Scope, Send

    from maie.api.services import Services

    #: (services, task id, tenant, If-None-Match) -> (status code, headers, body): the route's answer.
    Answer = Callable[[Services, str, str, str], Awaitable[tuple[int, dict[str, str], bytes]]]

__all__ = ["StatusPollMiddleware"]

_API_KEY: Final = b"x-api-key"
_AUTHORIZATION: Final = b"authorization"
_IF_NONE_MATCH: Final = b"if-none-match"
_JSON: Final = (b"content-type", b"application/json")
#: Key in the scope's state: what the poll was found to present, for the answering step.
_POLL_STATE: Final = "maie_poll"


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers the poll needs, by their lower-case names (the raw ASGI list)."""
    wanted: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in (_API_KEY, _AUTHORIZATION, _IF_NONE_MATCH):
            wanted.setdefault(name.decode("latin-1"), value.decode("latin-1"))  # the first, as Litestar reads
    return wanted


class StatusPollMiddleware(ASGIMiddleware):
    """Answers a status poll with a known key here, errors included; hands on the rest."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, answer: Answer) -> None:
        """``answer``: what the route answers (:func:`~maie.api.routes.status.status_answer`)."""
        self.answer = answer
        # The route's own exception handling (Litestar puts one between a route's middleware and
        # its handler): what the answer raises becomes the response the route would send. The
        # helper is Litestar's internal one (the version is locked; the parity tests would fail
        # on an upgrade that changed it).
        self._respond = wrap_in_exception_handler(self._poll)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Answer the poll here when its key is known, else let the route answer it."""
        if scope.get("method") == "GET":
            headers = _headers(scope)
            given = presented_key(_CaseFree(headers))
            if given:
                services: Services = scope["litestar_app"].state.services
                try:
                    tenant = tenant_for_key(services.api_keys, given)
                except UnauthorizedError:
                    pass  # the route's guard says so, in its words
                else:
                    scope["state"][_POLL_STATE] = (services, given, tenant, headers.get("if-none-match", ""))
                    await self._respond(scope, receive, send)
                    return
        await next_app(scope, receive, send)

    async def _poll(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002 - ASGI
        services, given, tenant, if_none_match = scope["state"].pop(_POLL_STATE)
        if services.rate_limited:
            await services.rate_limiter.hit(given, "requests")
        status_code, headers, body = await self.answer(
            services, scope["path_params"]["task_id"], tenant, if_none_match
        )
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if body:
            raw += [_JSON, (b"content-length", str(len(body)).encode("latin-1"))]
        await send({"type": "http.response.start", "status": status_code, "headers": raw})
        await send({"type": "http.response.body", "body": body, "more_body": False})


class _CaseFree(dict[str, str]):
    """The lower-cased headers read by their canonical names, as the guard reads them."""

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(key.lower(), default)
