"""Numbers as clients read them: times to the millisecond, ratios to four places.

Stage artifacts keep the floats the engines and the arithmetic gave (``7.74000000000002`` is a
window offset plus a segment time), and stored result versions are never rewritten. Every result
the API answers (``GET /v1/status``, its events, ``/results``, exports, the batch export) passes
through :func:`public_result` on its way out, so clients see ``7.74`` whatever version of the
worker stored it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import msgspec

if TYPE_CHECKING:
    from maie.schemas import EnhancementMetrics, Metrics, ResultVersion, Segment, Word

__all__ = ["RATIO_PLACES", "TIME_PLACES", "public_result"]

#: Decimal places of a time in seconds: milliseconds.
TIME_PLACES: Final = 3
#: Decimal places of a ratio (confidence, probability, RTF, coverage, edit rate).
RATIO_PLACES: Final = 4


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, RATIO_PLACES)


def _word(word: Word) -> Word:
    return msgspec.structs.replace(
        word,
        start=round(word.start, TIME_PLACES),
        end=round(word.end, TIME_PLACES),
        probability=round(word.probability, RATIO_PLACES),
    )


def _segment(segment: Segment) -> Segment:
    return msgspec.structs.replace(
        segment,
        start=round(segment.start, TIME_PLACES),
        end=round(segment.end, TIME_PLACES),
        confidence=_ratio(segment.confidence),
        words=None if segment.words is None else [_word(w) for w in segment.words],
    )


def _metrics(metrics: Metrics) -> Metrics:
    return msgspec.structs.replace(
        metrics,
        input_duration_seconds=round(metrics.input_duration_seconds, TIME_PLACES),
        processing_time_seconds=round(metrics.processing_time_seconds, TIME_PLACES),
        rtf=round(metrics.rtf, RATIO_PLACES),
        vad_coverage=_ratio(metrics.vad_coverage),
        asr_confidence_avg=_ratio(metrics.asr_confidence_avg),
        edit_rate_cleaning=_ratio(metrics.edit_rate_cleaning),
    )


def _enhancement(metrics: EnhancementMetrics) -> EnhancementMetrics:
    return msgspec.structs.replace(
        metrics,
        edit_rate=round(metrics.edit_rate, RATIO_PLACES),
        word_edit_rate=round(metrics.word_edit_rate, RATIO_PLACES),
    )


def public_result(result: ResultVersion) -> ResultVersion:
    """``result`` with its times rounded to milliseconds and its ratios to four places."""
    results = result.results
    segments = results.segments
    enhancement = results.enhancement_metrics
    return msgspec.structs.replace(
        result,
        results=msgspec.structs.replace(
            results,
            segments=None if segments is None else [_segment(s) for s in segments],
            enhancement_metrics=None if enhancement is None else _enhancement(enhancement),
        ),
        metrics=None if result.metrics is None else _metrics(result.metrics),
    )
