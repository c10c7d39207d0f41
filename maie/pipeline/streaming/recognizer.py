"""What a streaming recognizer is: 16 kHz samples in, in order; partial and final events out.

A recognizer belongs to one session and is driven by one thread at a time (the session makes sure);
the models behind it are shared (see :mod:`maie.pipeline.streaming.engine`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from maie.pipeline.asr.segments import clamp, unit
from maie.pipeline.streaming.events import FinalEvent, PartialEvent
from maie.schemas import Segment, Word

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from maie.pipeline.streaming.agreement import TimedWord
    from maie.pipeline.streaming.events import StreamEvent

__all__ = ["Recognizer"]


class Recognizer(ABC):
    """One session's incremental recognizer."""

    def __init__(self, *, word_timestamps: bool) -> None:
        self.word_timestamps = word_timestamps
        self._segments = 0
        #: End of the last final: segments never overlap, whatever the decoder's word times say.
        self._committed_end = 0.0
        #: Whether a partial was sent for the open segment (its final is then always sent).
        self._partial_open = False
        self._partial_text: str | None = None

    @property
    @abstractmethod
    def language(self) -> str | None:
        """The language being recognised, once known."""

    @abstractmethod
    def accept(self, samples: np.ndarray) -> list[StreamEvent]:
        """Take the next samples (int16, 16 kHz mono) and say what changed."""

    @abstractmethod
    def finish(self) -> list[StreamEvent]:
        """End of the stream: commit whatever is open."""

    def close(self) -> None:  # noqa: B027 - recognizers without leased resources need nothing
        """Give back what the recognizer holds (a leased decoder). Safe to call twice."""

    def _partial(self, text: str, start: float, end: float, stable: str = "") -> list[StreamEvent]:
        """A partial for the open segment, unless its text has not changed."""
        text, stable = text.strip(), stable.strip()
        if text == self._partial_text or (not text and not self._partial_open):
            return []
        self._partial_text, self._partial_open = text, True
        start = max(start, self._committed_end)
        return [PartialEvent(text=text, start=start, end=max(end, start), stable=stable)]

    def _final(
        self, text: str, start: float, end: float, words: Sequence[TimedWord] = ()
    ) -> list[StreamEvent]:
        """Commit the open segment; nothing when it said nothing and no partial showed it."""
        text = text.strip()
        was_open, self._partial_open, self._partial_text = self._partial_open, False, None
        if not text and not was_open:
            return []
        start = max(start, self._committed_end)
        end = max(end, start)
        timed = [
            Word(
                start=(w_start := clamp(w.start, start, end)),
                end=clamp(w.end, w_start, end),
                word=w.text.strip(),
                probability=unit(w.probability),
            )
            for w in words
        ]
        segment = Segment(
            id=self._segments + 1,
            start=start,
            end=end,
            text=text,
            confidence=unit(sum(w.probability for w in timed) / len(timed)) if timed else None,
            words=timed if self.word_timestamps else None,
        )
        return self._commit(segment)

    def _commit(self, segment: Segment) -> list[StreamEvent]:
        """Send ``segment`` (numbered ``len(finals) + 1``) as the final of the open segment."""
        self._segments = segment.id
        self._committed_end = segment.end
        self._partial_open, self._partial_text = False, None
        return [FinalEvent(segment=segment)]
