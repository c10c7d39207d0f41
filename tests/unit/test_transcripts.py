"""Transcript exports parse back with an independent subtitle parser (pysubs2) and keep times."""

from __future__ import annotations

import html
from datetime import UTC, datetime

import msgspec
import pysubs2
import pytest

from maie.schemas import Results, ResultVersion, Segment, Versions
from maie.transcripts import ExportFormat, render, to_srt, to_text, to_vtt

SEGMENTS = [
    Segment(id=1, start=0.0, end=2.5, text=" And so, my fellow Americans,"),
    Segment(id=2, start=2.5, end=2.5, text=" (a zero-length segment)"),
    Segment(id=3, start=3.0055, end=7.1254, text=" ask not what R&D <costs> you"),
    Segment(id=4, start=8.0, end=9.0, text="   "),
    Segment(id=5, start=3725.25, end=3730.999, text=" one hour in\n\nwith a blank line"),
]
#: The cues a subtitle file must hold: segments with text, times in milliseconds (halves up, in
#: both formats: 3.0055 s is 3006 ms, 7.1254 s is 7125 ms).
CUES = [(0, 2500), (2500, 2500), (3006, 7125), (3725250, 3730999)]


class TestSubtitles:
    """SRT and VTT keep every segment's times to the millisecond."""

    def test_srt_round_trip(self):
        parsed = pysubs2.SSAFile.from_string(to_srt(SEGMENTS), format_="srt")
        assert [(e.start, e.end) for e in parsed] == CUES
        assert parsed[0].plaintext == "And so, my fellow Americans,"
        assert parsed[3].plaintext == "one hour in\nwith a blank line", "a blank line would end the cue"

    def test_vtt_round_trip_escapes_markup(self):
        text = to_vtt(SEGMENTS)
        assert text.startswith("WEBVTT")
        assert "R&amp;D &lt;costs&gt; you" in text
        parsed = pysubs2.SSAFile.from_string(text, format_="vtt")
        assert [(e.start, e.end) for e in parsed] == CUES
        assert html.unescape(parsed[2].plaintext) == "ask not what R&D <costs> you"

    def test_text_has_one_line_per_cue(self):
        assert to_text(SEGMENTS).splitlines() == [
            "And so, my fellow Americans,",
            "(a zero-length segment)",
            "ask not what R&D <costs> you",
            "one hour in",
            "with a blank line",
        ]

    @pytest.mark.parametrize("fmt", list(ExportFormat))
    def test_no_segments(self, fmt):
        result = ResultVersion(
            version=1,
            created_at=datetime.now(UTC),
            kind="pipeline",
            results=Results(segments=None),
            versions=Versions(pipeline_version="t"),
        )
        out = render(result, fmt, task_id="t")
        assert isinstance(out, bytes)
        if fmt == ExportFormat.JSON:
            assert msgspec.json.decode(out)["segments"] == []

    def test_json_keeps_segments(self):
        result = ResultVersion(
            version=3,
            created_at=datetime.now(UTC),
            kind="pipeline",
            results=Results(segments=SEGMENTS, language="en"),
            versions=Versions(pipeline_version="t"),
        )
        body = msgspec.json.decode(render(result, ExportFormat.JSON, task_id="t1"))
        assert body["result_version"] == 3
        assert body["language"] == "en"
        assert msgspec.convert(body["segments"], list[Segment]) == SEGMENTS
