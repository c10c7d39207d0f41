"""RTTM, the NIST "who spoke when" text format that scoring tools read.

One line per turn: ``SPEAKER <file> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>``, times
in seconds. Readers accept any whitespace and ignore lines of other types and comments.
"""

from __future__ import annotations

import re

from maie.schemas import SpeakerTurn

__all__ = ["RttmError", "read_rttm", "write_rttm"]

_UNSAFE = re.compile(r"\s+")


class RttmError(ValueError):
    """A line that is not valid RTTM; says which and why."""


def write_rttm(turns: list[SpeakerTurn], file_id: str) -> str:
    """The turns as RTTM text (one line per turn, a newline after each).

    Whitespace in ``file_id`` or a label would break the columns, so it becomes ``_``.
    """
    uri = _UNSAFE.sub("_", file_id) or "audio"
    fields = ((t.start, t.end - t.start, _UNSAFE.sub("_", t.speaker)) for t in turns)
    return "".join(f"SPEAKER {uri} 1 {a:.3f} {d:.3f} <NA> <NA> {who} <NA> <NA>\n" for a, d, who in fields)


def read_rttm(text: str, file_id: str | None = None) -> list[SpeakerTurn]:
    """The ``SPEAKER`` lines of RTTM text as turns in file order.

    Args:
        text: RTTM content.
        file_id: Keep only lines of this file; ``None`` keeps all.

    Raises:
        RttmError: naming the line that has too few fields or bad times.
    """
    turns: list[SpeakerTurn] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith((";", "#")) or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:  # noqa: PLR2004 - the speaker is the 8th column
            msg = f"RTTM line {number} has {len(fields)} fields, a SPEAKER line needs at least 8: {line!r}"
            raise RttmError(msg)
        if file_id is not None and fields[1] != file_id:
            continue
        try:
            start, duration = float(fields[3]), float(fields[4])
        except ValueError:
            msg = f"RTTM line {number}: start and duration must be numbers: {line!r}"
            raise RttmError(msg) from None
        if start < 0 or duration < 0:
            msg = f"RTTM line {number}: negative start or duration: {line!r}"
            raise RttmError(msg)
        turns.append(SpeakerTurn(start=start, end=start + duration, speaker=fields[7]))
    return turns
