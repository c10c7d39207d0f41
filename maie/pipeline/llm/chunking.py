"""Splitting a transcript into requests that fit a token budget, on segment boundaries.

Segments are packed in order until the next one would overflow the budget. A single segment
longer than the budget (a long monologue without pauses) is cut into pieces at whitespace where
possible, at characters otherwise (scripts without spaces); its pieces keep the segment's id and
times and each becomes a chunk of its own, so a chunk never holds two pieces of one segment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from maie.schemas import Segment

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

__all__ = ["Chunk", "chunk_segments", "split_text"]


class Chunk(msgspec.Struct, frozen=True, kw_only=True):
    """Consecutive segments (or the pieces of one) that fit one request."""

    segments: tuple[Segment, ...]
    #: Their tokens, per-segment overhead included.
    tokens: int


def chunk_segments(
    segments: Sequence[Segment],
    count: Callable[[str], int],
    limit: int,
    *,
    per_segment: int = 0,
) -> list[Chunk]:
    """Pack ``segments`` into chunks of at most ``limit`` tokens.

    Args:
        segments: The transcript, in order.
        count: Token counter.
        limit: Most tokens per chunk.
        per_segment: Tokens each segment costs besides its text (id, times, JSON punctuation).

    Returns:
        The chunks, in order; together they hold every segment's text.

    Raises:
        ValueError: if ``limit`` leaves no room for text.
    """
    room = limit - per_segment
    if room < 1:
        msg = f"a chunk of {limit} tokens leaves no room for text ({per_segment} per segment)"
        raise ValueError(msg)
    chunks: list[Chunk] = []
    current: list[Segment] = []
    used = 0
    for segment in segments:
        cost = count(segment.text) + per_segment
        if cost > limit:
            if current:
                chunks.append(Chunk(segments=tuple(current), tokens=used))
                current, used = [], 0
            for piece in split_text(segment.text, count, room):
                part = msgspec.structs.replace(segment, text=piece, words=None)
                chunks.append(Chunk(segments=(part,), tokens=count(piece) + per_segment))
            continue
        if current and used + cost > limit:
            chunks.append(Chunk(segments=tuple(current), tokens=used))
            current, used = [], 0
        current.append(segment)
        used += cost
    if current:
        chunks.append(Chunk(segments=tuple(current), tokens=used))
    return chunks


def split_text(text: str, count: Callable[[str], int], limit: int) -> Iterator[str]:
    """Cut ``text`` into pieces of at most ``limit`` tokens, at whitespace where possible.

    Each cut takes the longest prefix that fits (binary search on characters, since a tokenizer's
    count grows with the prefix), then backs off to the last whitespace in its second half.
    """
    rest = text.strip()
    while rest:
        if count(rest) <= limit:
            yield rest
            return
        low, high = 1, len(rest)
        while low < high:
            middle = (low + high + 1) // 2
            if count(rest[:middle]) <= limit:
                low = middle
            else:
                high = middle - 1
        cut = low
        space = rest.rfind(" ", 0, cut + 1)
        if space > cut // 2:
            cut = space
        yield rest[:cut].strip()
        rest = rest[cut:].strip()
