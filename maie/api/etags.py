"""Conditional GETs: strong ETags of JSON bodies, and 304 when ``If-None-Match`` names them."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from litestar import Response
from litestar.status_codes import HTTP_304_NOT_MODIFIED

if TYPE_CHECKING:
    from litestar import Request

__all__ = ["etag_listed", "etag_of", "json_with_etag", "not_modified", "not_modified_response"]


def etag_of(body: bytes) -> str:
    """The (strong) ETag of a body."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_listed(if_none_match: str, etag: str) -> bool:
    """Whether the value of an ``If-None-Match`` header names ``etag``."""
    return etag in {t.strip() for t in if_none_match.split(",")}


def not_modified(request: Request[Any, Any, Any], etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag``."""
    return etag_listed(request.headers.get("If-None-Match", ""), etag)


def not_modified_response(headers: dict[str, str]) -> Response[Any]:
    """An empty 304 with ``headers`` (the ETag among them)."""
    return Response(content=b"", status_code=HTTP_304_NOT_MODIFIED, headers=headers)


def json_with_etag(
    request: Request[Any, Any, Any], body: bytes, headers: dict[str, str] | None = None
) -> Response[Any]:
    """``body`` as JSON with its ETag, or an empty 304 when ``If-None-Match`` names that ETag."""
    etag = etag_of(body)
    headers = {"ETag": etag, **(headers or {})}
    if not_modified(request, etag):
        return not_modified_response(headers)
    return Response(content=body, media_type="application/json", headers=headers)
