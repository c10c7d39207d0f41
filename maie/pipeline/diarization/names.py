"""Names for speakers: where a rename puts them (segments, words, turns, a summary's text).

A rename (``PATCH /v1/tasks/{id}/speakers``) makes a new result version in which each renamed
speaker's name stands wherever its label stood. Segments, words and turns carry the label in a
field, so they are renamed exactly, from the labels of the pipeline's version 1. A summary is an
LLM's free JSON: its strings are rewritten, every whole-word occurrence of a speaker's label (or
of the name it had before) becoming its new name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from maie.schemas import Segment, SpeakerInfo, SpeakerTurn

__all__ = ["named", "names_of", "rename_in_summary", "rename_segments", "rename_turns"]


def names_of(speakers: Iterable[SpeakerInfo]) -> dict[str, str]:
    """Label to name of the speakers that have a name."""
    return {s.id: s.name for s in speakers if s.name}


def named(label: str | None, names: Mapping[str, str]) -> str | None:
    """What a result shows for ``label``: its name if it has one, else the label."""
    return names.get(label, label) if label is not None else None


def rename_segments(segments: Iterable[Segment], names: Mapping[str, str]) -> list[Segment]:
    """``segments`` with each speaker (of segments and words) shown by its name where it has one."""
    renamed = []
    for segment in segments:
        words = (
            [msgspec.structs.replace(w, speaker=named(w.speaker, names)) for w in segment.words]
            if segment.words
            else segment.words
        )
        renamed.append(msgspec.structs.replace(segment, speaker=named(segment.speaker, names), words=words))
    return renamed


def rename_turns(turns: Iterable[SpeakerTurn], names: Mapping[str, str]) -> list[SpeakerTurn]:
    """``turns`` with each speaker shown by its name where it has one."""
    return [msgspec.structs.replace(t, speaker=names.get(t.speaker, t.speaker)) for t in turns]


def rename_in_summary(summary: dict[str, Any], replacements: Mapping[str, str]) -> dict[str, Any]:
    """``summary`` with every whole-word occurrence of a key of ``replacements`` replaced, in every string.

    All keys are replaced in one pass, so renaming A to B and B to A swaps them. Keys that are
    empty or equal to their value are ignored.
    """
    wanted = {old: new for old, new in replacements.items() if old and old != new}
    if not wanted:
        return summary
    # Longest first, so that "SPEAKER_1" never takes the front of "SPEAKER_10".
    alternatives = "|".join(re.escape(old) for old in sorted(wanted, key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")

    def rewrite(value: Any) -> Any:  # noqa: ANN401 - any JSON value
        if isinstance(value, str):
            return pattern.sub(lambda match: wanted[match.group(0)], value)
        if isinstance(value, list):
            return [rewrite(item) for item in value]
        if isinstance(value, dict):
            return {key: rewrite(item) for key, item in value.items()}
        return value

    rewritten: dict[str, Any] = rewrite(summary)
    return rewritten
