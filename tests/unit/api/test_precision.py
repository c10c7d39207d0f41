"""Numbers as clients read them: times to the millisecond, ratios to four places, at the API edge."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import msgspec

from maie.api.batch_export import export_rows
from maie.api.precision import public_result
from maie.api.queries import load_result, status_body, status_etag
from maie.api.status_bodies import StatusBodies
from maie.schemas import (
    BatchRecord,
    EnhancementMetrics,
    Metrics,
    Results,
    ResultVersion,
    Segment,
    TaskStatus,
    Versions,
    Word,
)
from tests.fixtures.records import make_record

#: A stored result with the floats engines and window offsets give.
NOISY = ResultVersion(
    version=1,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    kind="pipeline",
    results=Results(
        raw_transcript="hello there",
        language="en",
        segments=[
            Segment(
                id=1,
                start=0.30000000000000004,
                end=7.74000000000002,
                text="hello there",
                confidence=0.876543219,
                words=[Word(start=7.0004999, end=7.74000000000002, word="there", probability=0.912345678)],
            )
        ],
        enhancement_metrics=EnhancementMetrics(
            edit_rate=0.123456789, word_edit_rate=0.3333333333, segments=1
        ),
    ),
    versions=Versions(pipeline_version="test"),
    metrics=Metrics(
        input_duration_seconds=11.000000000000002,
        processing_time_seconds=2.3456789,
        rtf=0.213245454545,
        vad_coverage=0.93333333333,
        asr_confidence_avg=0.87654321,
        edit_rate_cleaning=0.1234567,
    ),
)


def _floats(value):
    """Every float in a decoded JSON value."""
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _floats(item)
    elif isinstance(value, list):
        for item in value:
            yield from _floats(item)


class TestPublicResult:
    def test_times_to_milliseconds_and_ratios_to_four_places(self):
        shown = public_result(NOISY)
        (segment,) = shown.results.segments
        assert (segment.start, segment.end, segment.confidence) == (0.3, 7.74, 0.8765)
        (word,) = segment.words
        assert (word.start, word.end, word.probability) == (7.0, 7.74, 0.9123)
        assert shown.metrics == Metrics(
            input_duration_seconds=11.0,
            processing_time_seconds=2.346,
            rtf=0.2132,
            vad_coverage=0.9333,
            asr_confidence_avg=0.8765,
            edit_rate_cleaning=0.1235,
        )
        assert shown.results.enhancement_metrics.edit_rate == 0.1235

    def test_nothing_else_changes(self):
        shown = public_result(NOISY)
        assert shown.versions == NOISY.versions
        assert shown.results.raw_transcript == NOISY.results.raw_transcript
        assert (shown.version, shown.kind, shown.created_at) == (NOISY.version, NOISY.kind, NOISY.created_at)


class TestApiEdge:
    """The API's reads of a stored result (a real Redis store); ``services`` is a test double."""

    async def test_status_results_and_batch_export_are_rounded(self, async_store, store):
        record = make_record()
        record.status = TaskStatus.COMPLETE
        record.result_version = 1
        await async_store.create(record)
        assert store.put_result("t1", NOISY)
        services = SimpleNamespace(store=async_store, status_bodies=StatusBodies())
        stored = await async_store.get("t1")

        body = msgspec.json.decode(await status_body(services, stored, status_etag(stored)))
        result = msgspec.to_builtins(await load_result(services, stored, None))
        batch = BatchRecord(
            batch_id="b1",
            tenant="acme",
            created_at=record.submitted_at,
            request=record.request,
            task_ids=["t1"],
        )
        (row,) = [row async for row in export_rows(async_store, batch)]

        assert body["results"]["segments"][0]["end"] == 7.74
        assert result["results"]["segments"][0]["words"][0]["start"] == 7.0
        assert row["duration_s"] == 11.0
        for number in [*_floats(body), *_floats(result)]:
            assert round(number, 4) == number, number
