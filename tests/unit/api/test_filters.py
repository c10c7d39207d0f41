"""The list and search filters: query parameters to the store's TaskFilter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maie.api.filters import task_filter
from maie.errors import InvalidRequestError


def test_every_filter_reaches_the_store():
    after = datetime(2026, 11, 1, tzinfo=UTC)
    got = task_filter(
        status=["complete,failed", " Pending "],
        submitted_after=after.isoformat(),
        submitted_before=(after + timedelta(days=1)).isoformat(),
        template_id="meeting_notes_v1",
        batch_id="b1",
    )
    assert got.statuses == {"COMPLETE", "FAILED", "PENDING"}
    assert got.submitted_after == after
    assert got.submitted_before == after + timedelta(days=1)
    assert (got.template_id, got.batch_id) == ("meeting_notes_v1", "b1")


def test_no_filter_keeps_everything():
    got = task_filter()
    assert got.statuses == frozenset()
    assert got.submitted_after is None
    assert got.template_id is None
    assert task_filter(template_id="", batch_id="").batch_id is None, "an empty parameter is no filter"


def test_a_time_without_a_zone_is_utc_and_one_with_a_zone_is_kept():
    naive = task_filter(submitted_after="2026-11-01T08:30")
    assert naive.submitted_after == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    aware = task_filter(submitted_before="2026-11-01T10:30:00+02:00")
    assert aware.submitted_before == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"status": ["DONE"]}, "unknown status 'DONE'"),
        (
            {
                "submitted_after": "2026-02-01T00:00:00Z",
                "submitted_before": "2026-01-01T00:00:00Z",
            },
            "submitted_before must be later",
        ),
        ({"submitted_before": "0.5"}, "submitted_before must be an ISO 8601 date or time"),
        ({"submitted_after": "yesterday"}, "submitted_after must be an ISO 8601"),
        ({"submitted_after": ""}, "submitted_after is empty"),
    ],
)
def test_bad_filters_say_what_is_wrong(fields, words):
    with pytest.raises(InvalidRequestError, match=words):
        task_filter(**fields)
