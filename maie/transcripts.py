"""Transcript exports from stored segments: plain text, SubRip, WebVTT and JSON.

Timecodes are written by subtitle libraries, not by hand: ``srt`` for SubRip, ``webvtt-py`` for
WebVTT; both formats hold milliseconds, and segment times are rounded to the nearest one (halves
up) the same way for both. Cue text is kept as transcribed, with two exceptions each
format needs: blank lines inside a cue are dropped (a blank line ends a cue), and WebVTT text is
HTML-escaped (``&``, ``<`` and ``>`` are markup there). Segments with no text are left out of the
subtitle formats.
"""

from __future__ import annotations

import enum
import html
import re
from datetime import timedelta
from typing import TYPE_CHECKING

import msgspec
import srt  # type: ignore[import-untyped]  # srt ships no type information
import webvtt
from webvtt.models import Timestamp

from maie.schemas import Segment

if TYPE_CHECKING:
    from collections.abc import Iterable

    from maie.schemas import ResultVersion

__all__ = ["MEDIA_TYPES", "ExportFormat", "TranscriptExport", "render", "to_srt", "to_text", "to_vtt"]

_BLANK_LINES = re.compile(r"\n\s*\n+")


class ExportFormat(enum.StrEnum):
    """Formats of ``GET /v1/tasks/{id}/transcript.<format>``."""

    TXT = "txt"
    SRT = "srt"
    VTT = "vtt"
    JSON = "json"


#: Media type of each format, as handed to Litestar: it adds ``; charset=utf-8`` to ``text/*``
#: types itself (naming it here too would send it twice), so only the others name their charset.
MEDIA_TYPES = {
    ExportFormat.TXT: "text/plain",
    ExportFormat.SRT: "application/x-subrip; charset=utf-8",
    ExportFormat.VTT: "text/vtt",
    ExportFormat.JSON: "application/json",
}


class TranscriptExport(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON export: the transcript of one result version with its timed segments."""

    task_id: str
    result_version: int
    language: str | None
    text: str
    segments: list[Segment]


def _ms(seconds: float) -> int:
    """Seconds to whole milliseconds, halves up (as webvtt-py rounds), for both subtitle formats."""
    return Timestamp.from_seconds(seconds).in_milliseconds()


def _cues(segments: Iterable[Segment]) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of the segments that have text."""
    cues = []
    for segment in segments:
        text = _BLANK_LINES.sub("\n", segment.text.strip())
        if text:
            cues.append((_ms(segment.start), _ms(max(segment.end, segment.start)), text))
    return cues


def to_text(segments: Iterable[Segment]) -> str:
    """One line per segment."""
    return "".join(text + "\n" for _, _, text in _cues(segments))


def to_srt(segments: Iterable[Segment]) -> str:
    """SubRip, numbered from 1."""
    subtitles = [
        srt.Subtitle(
            index=n, start=timedelta(milliseconds=start), end=timedelta(milliseconds=end), content=text
        )
        for n, (start, end, text) in enumerate(_cues(segments), start=1)
    ]
    # reindex=False: keep every segment, zero-length ones too (srt drops those when it reindexes).
    return str(srt.compose(subtitles, reindex=False))


def to_vtt(segments: Iterable[Segment]) -> str:
    """WebVTT."""
    captions = [
        webvtt.Caption(
            start=str(Timestamp.from_seconds(start / 1000)),
            end=str(Timestamp.from_seconds(end / 1000)),
            text=html.escape(text, quote=False),
        )
        for start, end, text in _cues(segments)
    ]
    return webvtt.WebVTT(captions=captions).content


def render(result: ResultVersion, fmt: ExportFormat, *, task_id: str) -> bytes:
    """The transcript of ``result`` in ``fmt``, encoded as UTF-8."""
    segments = result.results.segments or []
    if fmt == ExportFormat.SRT:
        return to_srt(segments).encode()
    if fmt == ExportFormat.VTT:
        return to_vtt(segments).encode()
    text = to_text(segments)
    if fmt == ExportFormat.TXT:
        return text.encode()
    export = TranscriptExport(
        task_id=task_id,
        result_version=result.version,
        language=result.results.language,
        text=text,
        segments=segments,
    )
    return msgspec.json.encode(export)
