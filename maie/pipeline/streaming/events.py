"""What a live session says: ``partial`` while a segment is open, ``final`` once it is committed.

The events are tagged msgspec Structs, so the WebSocket endpoint sends ``msgspec.json.encode(event)``
as is: ``{"type": "partial", "text", "start", "end", "stable"}`` and ``{"type": "final", "segment": {...}}``
(the segment in the contract's :class:`~maie.schemas.Segment` shape, ``words`` only when asked).
Times are seconds on the session's own timeline, counted from its first sample.
"""

from __future__ import annotations

import msgspec

from maie.schemas import Segment

__all__ = ["FinalEvent", "PartialEvent", "StreamEvent"]


class PartialEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="partial"):
    """The open segment's current text; later partials of the same segment replace it."""

    #: Everything heard in the open segment so far; the end of it may still change.
    text: str
    #: Where the open segment starts.
    start: float
    #: How far the recognizer has heard.
    end: float
    #: The beginning of ``text`` that will not change any more (Whisper's agreed words; always
    #: empty with PocketSphinx, whose hypothesis may change until the utterance ends).
    stable: str = ""


class FinalEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="final"):
    """A committed segment: it never changes again, and it closes the open segment.

    Its text may be empty when partials were sent for speech that in the end said nothing, so a
    client can clear what it showed.
    """

    segment: Segment


#: Either event; decode with ``msgspec.json.decode(data, type=StreamEvent)``.
StreamEvent = PartialEvent | FinalEvent
