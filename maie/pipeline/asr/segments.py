"""What every backend does to build segments: keep times inside the recording, average confidence.

Engines report times that can stray a little outside the audio (window padding, alignment) and
scores that are not always bounded; the contract (:mod:`maie.schemas`) wants seconds within
``[0, duration]`` and probabilities within ``[0, 1]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maie.schemas import Segment

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["clamp", "unit", "weighted_confidence", "whole_segment"]


def clamp(value: float, low: float, high: float) -> float:
    """``value`` within ``[low, high]`` (``high`` below ``low`` counts as ``low``)."""
    return min(max(float(value), low), max(low, high))


def unit(value: float) -> float:
    """``value`` within ``[0, 1]``."""
    return clamp(value, 0.0, 1.0)


def weighted_confidence(segments: Sequence[Segment]) -> float | None:
    """Mean segment confidence weighted by duration (plain mean when every segment is empty).

    Returns:
        ``None`` when no segment has a confidence.
    """
    scored = [(seg.end - seg.start, seg.confidence) for seg in segments if seg.confidence is not None]
    if not scored:
        return None
    total = sum(weight for weight, _ in scored)
    if total <= 0:
        return unit(sum(conf for _, conf in scored) / len(scored))
    return unit(sum(weight * conf for weight, conf in scored) / total)


def whole_segment(text: str, duration: float) -> list[Segment]:
    """A transcript without timestamps as one segment spanning the recording (none when empty)."""
    text = text.strip()
    return [Segment(id=1, start=0.0, end=duration, text=text)] if text else []
