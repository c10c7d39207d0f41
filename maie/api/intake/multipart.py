"""Multipart forms read with limits, and every malformed part answered 400 or 413 naming the field.

Litestar reads a multipart body with the ``multipart`` library's push parser, but holds every text
field in memory up to the whole body limit, decodes it as UTF-8 without catching a failure (a 500
for ``-F file=<x.wav``, a text field of byte 0xff or a ``filename*=`` part), and answers a form with
too many parts "Request Entity Too Large" as a 400. This module reads the body with the same parser,
streaming file parts to Litestar's ``UploadFile`` (spooled to disk past 1 MiB) as before, and:

- bounds each text field to :data:`FIELD_MAX_BYTES` while it streams (a field that may hold a list,
  a batch's ``url``, to its own budget), so a huge field is refused after a few KiB, not parsed;
- bounds the number of parts (413) and checks what a part says: text where a file belongs (the
  curl ``<`` mistake), a file named only by ``filename*=`` (RFC 7578 §4.2 forbids it), an empty
  filename, text that is not in its charset;
- says which part is wrong and what to send instead.

:func:`form_reader` is a ``before_request`` hook: it runs after the guards (the body is not read
before the API key, rate limit and queue slot are checked) and leaves the parsed form where
Litestar's ``data`` extractor looks first, so the handler's form Struct, its validation and its
OpenAPI schema stay Litestar's. Litestar closes the uploads when the request ends; a form refused
half-way closes its own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.utils.scope.state import ScopeState
from multipart import (  # type: ignore[import-untyped]
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
)

from maie.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from litestar import Request

    from maie.config import Settings

__all__ = ["FIELD_MAX_BYTES", "FORM_PARTS", "FormLimits", "form_reader", "read_form"]

#: Largest text field, in bytes: the longest legitimate one (a 2 KiB URL, a prompt of 1,000
#: characters) fits several times over.
FIELD_MAX_BYTES: Final = 16 * 1024
#: Parts a form may have besides its recordings: every submission field, some repeated.
FORM_PARTS: Final = 64
#: Header lines of one part, and bytes of one line (the parser's defaults, named in errors).
_HEADER_LINES, _HEADER_BYTES = 8, 4096 + 128


@dataclass(frozen=True, kw_only=True)
class FormLimits:
    """What one route's form may hold."""

    #: Parts in all (fields and files).
    max_parts: int = FORM_PARTS
    #: Bytes of each text field.
    field_bytes: int = FIELD_MAX_BYTES
    #: Fields that must be files: text sent under these names is the curl ``<`` mistake.
    file_fields: frozenset[str] = frozenset({"file"})
    #: Fields that may hold a list (one item per line), and the bytes they may hold together.
    list_fields: frozenset[str] = frozenset()
    list_bytes: int = 0
    #: What the hints call the settings behind the limits, e.g. ``MAIE_BATCH_MAX_MEMBERS``.
    parts_setting: str | None = None


@dataclass
class _Part:
    """The part being read."""

    number: int
    segment: MultipartSegment
    upload: UploadFile | None = None
    text: bytearray = field(default_factory=bytearray)

    @property
    def name(self) -> str:
        return str(self.segment.name or "")


def _label(part: _Part) -> str:
    return f"field `{part.name}`" if part.name else f"part {part.number} (it has no name)"


def _start(segment: MultipartSegment, number: int) -> _Part:
    """The part that begins with ``segment``: a file (``UploadFile``) or a text field.

    Raises:
        InvalidRequestError: a file named only with ``filename*=``.
    """
    part = _Part(number=number, segment=segment)
    disposition = segment.header("Content-Disposition", "")
    if segment.filename is None and "filename*" in disposition.lower():
        raise InvalidRequestError(
            f"{_label(part)} names its file with `filename*=` (RFC 5987), which multipart/form-data "
            'does not use (RFC 7578 section 4.2): send `filename="..."` (curl -F "file=@path" does)',
            extra={"field": part.name},
        )
    if segment.filename is not None:
        part.upload = UploadFile(
            content_type=segment.content_type or "application/octet-stream",
            filename=segment.filename,
            headers=dict(segment.headerlist),
        )
    return part


def _not_a_file(part: _Part) -> InvalidRequestError:
    """Text where a file belongs: what ``curl -F file=<path`` sends."""
    return InvalidRequestError(
        f"{_label(part)} came as a text field, not as a file: send the file with `@` "
        f"(curl -F \"{part.name}=@recording.wav\"); curl's `<` sends the file's bytes as text",
        extra={"field": part.name},
    )


def _text(part: _Part) -> str:
    """The text of a finished text field, decoded in its charset.

    Raises:
        InvalidRequestError: an unknown charset, or bytes that are not text in it.
    """
    charset = part.segment.charset or "utf-8"
    try:
        return part.text.decode(charset)
    except LookupError:
        raise InvalidRequestError(
            f"{_label(part)} declares charset {charset[:40]!r}, which is unknown; send it as UTF-8",
            extra={"field": part.name},
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(
            f"{_label(part)} is not {charset} text (byte {part.text[exc.start]:#04x} at offset "
            f'{exc.start}); send text fields in UTF-8, and files with `@` (curl -F "file=@path")',
            extra={"field": part.name},
        ) from None


class _Reader:
    """One form being read: its parts so far and the text budget they used."""

    def __init__(self, limits: FormLimits) -> None:
        self.limits = limits
        self.fields: defaultdict[str, list[Any]] = defaultdict(list)
        self.part: _Part | None = None
        self.count = 0
        self.list_used = 0

    async def event(self, event: MultipartSegment | bytes | None) -> None:
        """Take one parser event: a part's headers, a chunk of its body, or its end."""
        if isinstance(event, MultipartSegment):
            self.count += 1
            self.part = _start(event, self.count)
            return
        part = self.part
        if part is None:  # the parser emits a part's headers before its body
            raise InvalidRequestError("malformed multipart/form-data: a part's body came before its headers")
        if event:
            if part.upload is not None:
                await part.upload.write(event)
            elif part.name in self.limits.file_fields:
                raise _not_a_file(part)  # at its first byte: the file's bytes are not read as text
            else:
                part.text.extend(event)
                self._check_size(part, len(event))
            return
        self.part = None
        if part.upload is None:
            self.fields[part.name].append(_text(part))
        elif part.segment.filename == "" and part.segment.size == 0:
            # A browser's file input left empty sends an empty part with an empty filename.
            await part.upload.close()
        elif not part.segment.filename:
            await part.upload.close()
            raise InvalidRequestError(
                f"{_label(part)} is a file with an empty filename: send its name "
                f'(curl -F "{part.name}=@recording.wav" does)',
                extra={"field": part.name},
            )
        else:
            await part.upload.seek(0)
            self.fields[part.name].append(part.upload)

    def _check_size(self, part: _Part, added: int) -> None:
        limits = self.limits
        if part.name in limits.list_fields:
            self.list_used += added
            if self.list_used > limits.list_bytes:
                raise PayloadTooLargeError(
                    f"the `{part.name}` fields hold more than {limits.list_bytes // 1024} KiB in all; "
                    "split the list over several requests",
                    extra={"field": part.name, "max_bytes": limits.list_bytes},
                )
        elif len(part.text) > limits.field_bytes:
            raise PayloadTooLargeError(
                f"{_label(part)} is longer than {limits.field_bytes // 1024} KiB, the most a text field "
                'may hold; send recordings as files (curl -F "file=@path")',
                extra={"field": part.name, "max_bytes": limits.field_bytes},
            )

    def refusal(self, exc: ParserError | ParserLimitReached) -> InvalidRequestError | PayloadTooLargeError:
        """What to answer for a parser error, naming where it happened."""
        where = f"part {self.count + (0 if self.part else 1)}"
        if self.part is not None:
            where = _label(self.part)
        elif self.fields:
            where += f" (after field `{next(reversed(self.fields))}`)"
        reason = str(exc.args[0]) if exc.args else type(exc).__name__
        if isinstance(exc, ParserLimitReached):
            if "segment count" in reason:
                hint = f" ({self.limits.parts_setting})" if self.limits.parts_setting else ""
                return PayloadTooLargeError(
                    f"the form has more than {self.limits.max_parts} parts{hint}; send fewer fields or "
                    "files per request",
                    extra={"max_parts": self.limits.max_parts},
                )
            return InvalidRequestError(
                f"malformed multipart/form-data in {where}: {reason} (a part has at most {_HEADER_LINES} "
                f"header lines of {_HEADER_BYTES} bytes)"
            )
        hint = ""
        if "decode" in reason:
            hint = "; names and filenames must be UTF-8"
        elif "segment header" in reason.lower():
            hint = "; a name or filename must not hold a line break"
        return InvalidRequestError(f"malformed multipart/form-data in {where}: {reason}{hint}")

    async def close(self) -> None:
        """Close every upload of a form that is being refused."""
        uploads = [v for values in self.fields.values() for v in values if isinstance(v, UploadFile)]
        if self.part is not None and self.part.upload is not None:
            uploads.append(self.part.upload)
        for upload in uploads:
            await upload.close()


async def read_form(request: Request[Any, Any, Any], limits: FormLimits) -> dict[str, Any]:
    """Read the request's multipart body into ``{name: value or [values]}`` as Litestar does.

    Text fields are ``str``, files ``UploadFile``; a name sent more than once maps to a list.

    Raises:
        UnsupportedMediaError: the body is not multipart/form-data (415).
        InvalidRequestError: a malformed body or part (400), naming the part.
        PayloadTooLargeError: a text field over its limit, or too many parts (413).
        HTTPException: 413 from Litestar when the body is over the route's size limit.
    """
    content_type, options = request.content_type
    if content_type != RequestEncodingType.MULTI_PART:
        raise UnsupportedMediaError(
            f"the body must be multipart/form-data (curl -F), not {content_type[:60] or 'untyped'}"
        )
    boundary = options.get("boundary", "")
    if not boundary:
        raise InvalidRequestError("multipart/form-data needs a boundary in Content-Type")
    reader = _Reader(limits)
    stream = request.stream()
    try:
        first = await anext(stream, b"")
        if not first:
            return {}
        with PushMultipartParser(boundary, max_segment_count=limits.max_parts) as parser:
            chunk = first
            while not parser.closed:
                for event in parser.parse(chunk):
                    await reader.event(event)
                chunk = await anext(stream, b"")
    except (ParserError, ParserLimitReached) as exc:
        await reader.close()
        raise reader.refusal(exc) from None
    except BaseException:
        await reader.close()
        raise
    return {name: values if len(values) > 1 else values[0] for name, values in reader.fields.items()}


def form_reader(
    limits_of: Callable[[Settings], FormLimits],
) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """A ``before_request`` hook that reads the form with ``limits_of(settings)`` for the handler.

    The form is left in the connection state, where Litestar's multipart ``data`` extractor takes
    it instead of parsing the body itself (and from where it closes the uploads afterwards).
    """

    async def read(request: Request[Any, Any, Any]) -> None:
        limits = limits_of(request.app.state.services.settings)
        ScopeState.from_scope(request.scope).form = await read_form(request, limits)

    return read
