"""What a full-text search answers: the matching tasks, and in each the texts that matched."""

from __future__ import annotations

from datetime import datetime

from maie.schemas.base import Frozen, Seconds, TaskStatus

__all__ = ["SearchHit", "SearchPage", "SearchSegment"]


class SearchSegment(Frozen, frozen=True, kw_only=True):
    """One text of a task that matched: a transcript segment, or the summary."""

    #: ``raw`` (ASR) or ``clean`` (enhanced) transcript segment, or ``summary``.
    source: str
    #: The segment's id in the result's segments; null for the summary.
    id: int | None = None
    start: Seconds | None = None
    end: Seconds | None = None
    #: Who spoke, where the transcript knows it.
    speaker: str | None = None
    #: The text around the match, HTML-escaped (``&``, ``<``, ``>``), matching words in ``<mark>…</mark>``.
    snippet: str


class SearchHit(Frozen, frozen=True, kw_only=True):
    """A task whose newest result matched the query."""

    task_id: str
    filename: str | None = None
    submitted_at: datetime
    status: TaskStatus
    batch_id: str | None = None
    template_id: str | None = None
    #: Texts of the task that matched (a segment matching in both transcripts counts once).
    matches: int
    #: The first matching texts in transcript order (the summary last).
    segments: list[SearchSegment]


class SearchPage(Frozen, frozen=True, kw_only=True):
    """Answer to GET /v1/search: matching tasks newest first; pass ``next_cursor`` back for more."""

    hits: list[SearchHit]
    next_cursor: str | None
