"""Transcript exports from stored segments: plain text, SubRip, WebVTT, JSON and RTTM.

Timecodes are written by subtitle libraries, not by hand: ``srt`` for SubRip, ``webvtt-py`` for
WebVTT; both formats hold milliseconds, and segment times are rounded to the nearest one (halves
up) the same way for both. Cue text is kept as transcribed, with two exceptions each
format needs: blank lines inside a cue are dropped (a blank line ends a cue), and WebVTT text is
HTML-escaped (``&``, ``<`` and ``>`` are markup there). Segments with no text are left out of the
subtitle formats.

A diarized segment names its speaker (its label, or the name a rename gave it): text and SubRip
lines start ``SPEAKER_00: ``, WebVTT cues are voice spans (``<v SPEAKER_00>...``). RTTM holds
the diarization turns themselves (:func:`maie.pipeline.diarization.write_rttm`).
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

from maie.pipeline.diarization.rttm import write_rttm
from maie.schemas import Segment, SpeakerInfo

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
    #: The diarization turns (only for diarized tasks).
    RTTM = "rttm"


#: Media type of each format, as handed to Litestar: it adds ``; charset=utf-8`` to ``text/*``
#: types itself (naming it here too would send it twice), so only the others name their charset.
#: RTTM has no registered type: it is plain text.
MEDIA_TYPES = {
    ExportFormat.TXT: "text/plain",
    ExportFormat.SRT: "application/x-subrip; charset=utf-8",
    ExportFormat.VTT: "text/vtt",
    ExportFormat.JSON: "application/json",
    ExportFormat.RTTM: "text/plain",
}


class TranscriptExport(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON export: the transcript of one result version with its timed segments."""

    task_id: str
    result_version: int
    language: str | None
    text: str
    segments: list[Segment]
    #: The speakers, when the task was diarized.
    speakers: list[SpeakerInfo] | None = None


def _ms(seconds: float) -> int:
    """Seconds to whole milliseconds, halves up (as webvtt-py rounds), for both subtitle formats."""
    return Timestamp.from_seconds(seconds).in_milliseconds()


def _cues(segments: Iterable[Segment]) -> list[tuple[int, int, str, str | None]]:
    """(start ms, end ms, text, speaker) of the segments that have text."""
    cues = []
    for segment in segments:
        text = _BLANK_LINES.sub("\n", segment.text.strip())
        if text:
            # A speaker's name is one line of the cue: newlines in it would split the cue.
            speaker = " ".join(segment.speaker.split()) if segment.speaker else None
            cues.append((_ms(segment.start), _ms(max(segment.end, segment.start)), text, speaker or None))
    return cues


def _spoken(text: str, speaker: str | None) -> str:
    """``text`` as said by ``speaker``: ``SPEAKER_00: text`` (just ``text`` without a speaker)."""
    return f"{speaker}: {text}" if speaker else text


def to_text(segments: Iterable[Segment]) -> str:
    """One line per segment, after its speaker when it has one."""
    return "".join(_spoken(text, who) + "\n" for _, _, text, who in _cues(segments))


def to_srt(segments: Iterable[Segment]) -> str:
    """SubRip, numbered from 1; a cue with a speaker starts with its name."""
    subtitles = [
        srt.Subtitle(
            index=n,
            start=timedelta(milliseconds=start),
            end=timedelta(milliseconds=end),
            content=_spoken(text, who),
        )
        for n, (start, end, text, who) in enumerate(_cues(segments), start=1)
    ]
    # reindex=False: keep every segment, zero-length ones too (srt drops those when it reindexes).
    return str(srt.compose(subtitles, reindex=False))


def _voice(text: str, speaker: str | None) -> str:
    """Cue text, as a voice span of ``speaker`` when there is one (both escaped)."""
    escaped = html.escape(text, quote=False)
    return f"<v {html.escape(speaker, quote=False)}>{escaped}" if speaker else escaped


def to_vtt(segments: Iterable[Segment]) -> str:
    """WebVTT; a cue with a speaker is a voice span (``<v SPEAKER_00>text``)."""
    captions = [
        webvtt.Caption(
            start=str(Timestamp.from_seconds(start / 1000)),
            end=str(Timestamp.from_seconds(end / 1000)),
            text=_voice(text, who),
        )
        for start, end, text, who in _cues(segments)
    ]
    return webvtt.WebVTT(captions=captions).content


def render(result: ResultVersion, fmt: ExportFormat, *, task_id: str) -> bytes:
    """The transcript of ``result`` in ``fmt``, encoded as UTF-8."""
    if fmt == ExportFormat.RTTM:
        return write_rttm(result.results.speaker_turns or [], task_id).encode()
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
        speakers=result.results.speakers,
    )
    return msgspec.json.encode(export)
