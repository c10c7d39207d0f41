"""Files answered with byte ranges (RFC 9110 §14): what an audio player needs to seek.

Litestar's ``File`` response (2.25) always sends the whole file and ignores ``Range``, so a browser's
``<audio>`` element could not seek in a long recording without downloading it first. This answers
one range with ``206 Partial Content``, an unsatisfiable one with ``416``, and anything else (no
``Range``, several ranges, a malformed header, an ``If-Range`` that no longer matches) with the
whole file, which RFC 9110 allows a server to do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.response import Stream
from litestar.status_codes import HTTP_206_PARTIAL_CONTENT, HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE

from maie.schemas import ErrorBody

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from litestar import Request, Response

__all__ = ["RANGE_RESPONSES", "ByteRange", "RangeNotSatisfiableError", "file_with_ranges", "parse_range"]

#: Bytes read from disk per chunk of the body.
CHUNK_BYTES = 256 * 1024
#: What a file with ranges answers besides the whole file, for a route's OpenAPI ``responses``.
RANGE_RESPONSES = {
    HTTP_206_PARTIAL_CONTENT: ResponseSpec(
        data_container=bytes,
        media_type="audio/wav",
        description="The byte range asked for by `Range`",
        generate_examples=False,
    ),
    HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE: ResponseSpec(
        data_container=ErrorBody,
        description="The `Range` starts beyond the end of the file (`Content-Range: bytes */size`)",
        generate_examples=False,
    ),
}
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` of a file, both included (as ``Content-Range`` counts them)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """Bytes in the range."""
        return self.end - self.start + 1


class RangeNotSatisfiableError(HTTPException):
    """Raised when a ``Range`` starts beyond the end of the file (416)."""

    status_code = HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range ``header`` asks for in a file of ``size`` bytes; ``None``: the whole file.

    ``bytes=first-last``, ``bytes=first-`` and ``bytes=-suffix`` are understood; a ``last`` past
    the end is cut to the end. Several ranges or a malformed header are ignored (the whole file is
    answered), as RFC 9110 §14.2 allows.

    Raises:
        RangeNotSatisfiableError: when the range starts at or after the end of the file, or asks
            for an empty suffix.
    """
    if header is None:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last ``last`` bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return ByteRange(start=max(size - suffix, 0), end=size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid, so ignored
    if start >= size:
        raise _unsatisfiable(size)
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start=start, end=end)


def _unsatisfiable(size: int) -> RangeNotSatisfiableError:
    return RangeNotSatisfiableError(
        detail=f"the requested range starts beyond the end of the file ({size} bytes)",
        headers={"Content-Range": f"bytes */{size}"},
    )


async def _read(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as fh:
        await fh.seek(start)
        left = length
        while left > 0:
            chunk = await fh.read(min(CHUNK_BYTES, left))
            if not chunk:  # the file shrank (deleted meanwhile): end the body early
                return
            left -= len(chunk)
            yield chunk


def file_with_ranges(
    request: Request[Any, Any, Any], path: Path, media_type: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    """``path`` as the answer to ``request``, honouring its ``Range`` and ``If-Range``.

    The ETag comes from the file's size and modification time, which change whenever its bytes
    do (MAIE writes a recording once, under a temporary name, and then renames it).

    Raises:
        RangeNotSatisfiableError: for a range beyond the end of the file.
        FileNotFoundError: when ``path`` does not exist.
    """
    stat = path.stat()
    size = stat.st_size
    etag = '"' + hashlib.sha256(f"{size}:{stat.st_mtime_ns}".encode()).hexdigest()[:24] + '"'
    wanted = parse_range(request.headers.get("Range"), size)
    if_range = request.headers.get("If-Range")
    if wanted is not None and if_range is not None and if_range.strip() != etag:
        wanted = None  # the client's copy is of other bytes: send them all
    common = {"Accept-Ranges": "bytes", "ETag": etag, **(headers or {})}
    if wanted is None:
        return Stream(
            _read(path, 0, size),
            media_type=media_type,
            headers={**common, "Content-Length": str(size)},
        )
    return Stream(
        _read(path, wanted.start, wanted.length),
        media_type=media_type,
        status_code=HTTP_206_PARTIAL_CONTENT,
        headers={
            **common,
            "Content-Length": str(wanted.length),
            "Content-Range": f"bytes {wanted.start}-{wanted.end}/{size}",
        },
    )
