"""GET /v1/me: who the API key belongs to, so a client (the web app) can show its tenant."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get

from maie.api.guards import tenant_of
from maie.schemas.base import Frozen

__all__ = ["Caller", "MeController"]


class Caller(Frozen, frozen=True, kw_only=True):
    """Answer to GET /v1/me."""

    #: The tenant of the key: every task it submits and sees is this tenant's.
    tenant: str


class MeController(Controller):
    """The caller."""

    path = "/me"
    tags = ("discovery",)

    @get("/", summary="The tenant of this API key (a cheap way to check a key)")
    async def me(self, request: Request[Any, Any, Any]) -> Caller:
        """Name the caller's tenant."""
        return Caller(tenant=tenant_of(request))
