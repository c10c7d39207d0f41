"""The short path of a status poll: GET /v1/status/{id} answered without the route's framework work.

Integrations poll status by the thousand, and for a poll Litestar's per-request work around the
handler (a ``Request``, the guards each called with a copy of the route handler, the signature
model, a ``Response`` turned into an ``ASGIResponse``) cost more than reading the task. This
middleware sits on the status route, inside the request-id and metrics middlewares, and answers
the polls it can answer whole with the route's own pieces: the key as the guard reads it
(:func:`~maie.api.guards.presented_key`, :func:`~maie.api.guards.tenant_for_key`), the rate limit
as the guard counts it, and the answer the handler gives
(:func:`~maie.api.routes.status.status_answer`). So the response, its request id, its log line and
its metrics are the route's.

Whatever it cannot answer whole it hands to the route untouched: a method other than GET, a
missing or unknown key, a rate limit used up, a malformed or unknown id, another tenant's task, a
store that cannot answer. The route then answers it as always, with the error body and headers of
every route; a request the short path has already counted against the rate limit is not counted
again (:data:`~maie.api.guards.RATE_COUNTED_STATE`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from maie.api.guards import RATE_COUNTED_STATE, presented_key, tenant_for_key
from maie.errors import MaieError

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


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers the poll needs, by their lower-case names (the raw ASGI list)."""
    wanted: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in (_API_KEY, _AUTHORIZATION, _IF_NONE_MATCH):
            wanted.setdefault(name.decode("latin-1"), value.decode("latin-1"))  # the first, as Litestar reads
    return wanted


class StatusPollMiddleware(ASGIMiddleware):
    """Answers a status poll that needs nothing but its key, its task and its ETag; hands on the rest."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, answer: Answer) -> None:
        """``answer``: what the route answers (:func:`~maie.api.routes.status.status_answer`)."""
        self.answer = answer

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Answer the poll here when it can be answered whole, else let the route answer it."""
        if scope.get("method") == "GET":
            answer = await self._answer(scope)
            if answer is not None:
                status_code, headers, body = answer
                raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
                if body:
                    raw += [_JSON, (b"content-length", str(len(body)).encode("latin-1"))]
                await send({"type": "http.response.start", "status": status_code, "headers": raw})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        await next_app(scope, receive, send)

    async def _answer(self, scope: Scope) -> tuple[int, dict[str, str], bytes] | None:
        services: Services = scope["litestar_app"].state.services
        headers = _headers(scope)
        given = presented_key(_CaseFree(headers))
        if not given:
            return None
        try:
            tenant = tenant_for_key(services.api_keys, given)
            if services.rate_limited:
                await services.rate_limiter.hit(given, "requests")
                scope.setdefault("state", {})[RATE_COUNTED_STATE] = True
            return await self.answer(
                services, scope["path_params"]["task_id"], tenant, headers.get("if-none-match", "")
            )
        except MaieError:
            return None


class _CaseFree(dict[str, str]):
    """The lower-cased headers read by their canonical names, as the guard reads them."""

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(key.lower(), default)
