"""Speakers on a transcript: label turns, give each segment and word its speaker, count them.

Pure functions over the result Structs, shared by every backend and by the stage that merges
diarization with ASR. A word takes the speaker whose turns cover most of it (the nearest turn
when it falls in a gap between turns); a segment with word timestamps that spans a change of
speaker is split at the word boundary; a segment without words takes the speaker that covers
most of it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import msgspec

from maie.schemas import Segment, SpeakerInfo, SpeakerTurn, Word

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["SpeakerAssignment", "assign_speakers", "label", "relabel", "speaker_stats"]


def label(index: int) -> str:
    """The stable label of the ``index``-th speaker to appear: ``SPEAKER_00``, ``SPEAKER_01``..."""
    return f"SPEAKER_{index:02d}"


def relabel(turns: Iterable[SpeakerTurn]) -> list[SpeakerTurn]:
    """Turns sorted by time, labels renamed ``SPEAKER_00``... in order of first appearance.

    Empty turns (``end <= start``) are dropped; the names a backend used are forgotten.
    """
    ordered = sorted((t for t in turns if t.end > t.start), key=lambda t: (t.start, t.end, t.speaker))
    names: dict[str, str] = {}
    for turn in ordered:
        names.setdefault(turn.speaker, label(len(names)))
    return [msgspec.structs.replace(t, speaker=names[t.speaker]) for t in ordered]


class SpeakerAssignment(msgspec.Struct, frozen=True, kw_only=True):
    """Segments with speakers (split where a speaker changes mid-segment) and the speakers."""

    segments: list[Segment]
    speakers: list[SpeakerInfo]


def _overlaps(start: float, end: float, turns: Sequence[SpeakerTurn]) -> dict[str, float]:
    covered: dict[str, float] = defaultdict(float)
    for turn in turns:
        if turn.start >= end:
            break
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > 0:
            covered[turn.speaker] += shared
    return covered


def _speaker_at(start: float, end: float, turns: Sequence[SpeakerTurn]) -> str | None:
    """The speaker covering most of ``[start, end]``, else the nearest turn's; ``None`` without turns."""
    if not turns:
        return None
    covered = _overlaps(start, end, turns)
    if covered:
        return max(sorted(covered.items()), key=lambda item: item[1])[0]  # ties: the lower label
    middle = (start + end) / 2
    nearest = min(turns, key=lambda t: max(t.start - middle, middle - t.end, 0.0))
    return nearest.speaker


def _join(words: Sequence[Word]) -> str:
    """Words back into text: Whisper's carry their leading space, PocketSphinx's do not."""
    if any(w.word[:1].isspace() for w in words):
        return "".join(w.word for w in words).strip()
    return " ".join(w.word.strip() for w in words)


def _split(segment: Segment, turns: Sequence[SpeakerTurn]) -> list[Segment]:
    if not segment.words:
        return [msgspec.structs.replace(segment, speaker=_speaker_at(segment.start, segment.end, turns))]
    words = [msgspec.structs.replace(w, speaker=_speaker_at(w.start, w.end, turns)) for w in segment.words]
    runs: list[list[Word]] = []
    for word in words:
        if runs and runs[-1][-1].speaker == word.speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    if len(runs) == 1:
        return [msgspec.structs.replace(segment, words=words, speaker=words[0].speaker)]
    return [
        msgspec.structs.replace(
            segment,
            start=segment.start if n == 0 else run[0].start,
            end=segment.end if n == len(runs) - 1 else run[-1].end,
            text=_join(run),
            words=run,
            speaker=run[0].speaker,
        )
        for n, run in enumerate(runs)
    ]


def speaker_stats(turns: Sequence[SpeakerTurn], segments: Sequence[Segment] = ()) -> list[SpeakerInfo]:
    """Each speaker of ``turns`` (in label order) with speaking time and segment count.

    Speaking time sums the speaker's turns (overlapping speech counts for each speaker); a
    speaker found by diarization but given no segment is listed with ``segment_count=0``.
    """
    time_by: dict[str, float] = defaultdict(float)
    for turn in turns:
        time_by[turn.speaker] += turn.end - turn.start
    count_by: dict[str, int] = defaultdict(int)
    for segment in segments:
        if segment.speaker is not None:
            count_by[segment.speaker] += 1
    ids = sorted(set(time_by) | set(count_by))
    return [
        SpeakerInfo(id=sid, speaking_time_s=round(time_by[sid], 3), segment_count=count_by[sid])
        for sid in ids
    ]


def assign_speakers(segments: Sequence[Segment], turns: Iterable[SpeakerTurn]) -> SpeakerAssignment:
    """Give every segment (and timed word) a speaker; split segments at changes of speaker.

    Args:
        segments: ASR segments in time order.
        turns: Diarization turns; relabelled ``SPEAKER_00``... in order of first appearance
            when their labels are not already so.

    Returns:
        The segments (renumbered from 1 when some were split) and the speaker statistics.
        Without turns (silence) every speaker is ``None`` and the speaker list is empty.
    """
    ordered = relabel(turns)
    assigned = [piece for segment in segments for piece in _split(segment, ordered)]
    if len(assigned) != len(segments):
        assigned = [msgspec.structs.replace(s, id=n) for n, s in enumerate(assigned, start=1)]
    return SpeakerAssignment(segments=assigned, speakers=speaker_stats(ordered, assigned))
