"""LocalAgreement-2: commit the words that two consecutive decodes of a growing window agree on.

The policy of Macháček et al., "Turning Whisper into Real-Time Transcription System" (2023),
as ufal/whisper_streaming runs it: the open window is re-decoded as audio arrives; each new
hypothesis is compared with the previous one and their longest common prefix (word by word) is
committed, never to change again; the rest waits for the next decode. Words of a new hypothesis
that end before the last committed one are ignored, and an n-gram (up to 5 words) that repeats
the tail of what was committed is dropped, because a decode of a window that still holds
committed audio says those words again.

Words are compared on a normalised form (case and punctuation ignored), so a decode that only
adds a comma does not hold a word back; the newer spelling is the one committed.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["HypothesisBuffer", "TimedWord"]

#: Longest repeated n-gram removed where a new hypothesis meets the committed words.
_MAX_NGRAM = 5
#: A new hypothesis overlaps committed words only if it starts within this many seconds of them.
_OVERLAP_S = 1.0
#: Words starting this little before the last committed word's end still count as new.
_SLACK_S = 0.1

_NOT_WORD = re.compile(r"[^\w']+")


class TimedWord(NamedTuple):
    """A word with its time span on the session timeline, as the decoder spelled it."""

    start: float
    end: float
    #: Text as decoded (Whisper's words carry their leading space).
    text: str
    probability: float = 1.0

    @property
    def key(self) -> str:
        """What agreement compares: lower case, punctuation and spaces removed."""
        return _NOT_WORD.sub("", self.text.lower())


class HypothesisBuffer:
    """The words of one open window: committed ones, and the last hypothesis past them."""

    def __init__(self, committed_until: float = 0.0) -> None:
        #: Words committed in the current window (kept to recognise repeats).
        self.committed: list[TimedWord] = []
        #: Unconfirmed words of the last hypothesis.
        self.tentative: list[TimedWord] = []
        self._new: list[TimedWord] = []
        #: End of the last committed word (or where the window started).
        self.committed_until = committed_until

    def insert(self, words: list[TimedWord]) -> None:
        """Take a new hypothesis of the whole window (times on the session timeline)."""
        new = [w for w in words if w.start > self.committed_until - _SLACK_S]
        if new and self.committed and abs(new[0].start - self.committed_until) < _OVERLAP_S:
            for size in range(1, min(len(self.committed), len(new), _MAX_NGRAM) + 1):
                tail = [w.key for w in self.committed[-size:]]
                head = [w.key for w in new[:size]]
                if tail == head:
                    del new[:size]
                    break
        self._new = new

    def flush(self) -> list[TimedWord]:
        """Commit the longest common prefix of the new hypothesis and the previous one."""
        commit: list[TimedWord] = []
        new, previous = self._new, self.tentative
        while new and previous and new[0].key == previous[0].key:
            commit.append(new[0])
            new, previous = new[1:], previous[1:]
        self.tentative, self._new = new, []
        if commit:
            self.committed.extend(commit)
            self.committed_until = commit[-1].end
        return commit

    def forget_until(self, time: float) -> None:
        """Drop committed words that end by ``time`` (their audio has left the window)."""
        self.committed = [w for w in self.committed if w.end > time]
