"""The list and search filters: query parameters to the store's TaskFilter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from maie.api.filters import task_filter
from maie.errors import InvalidRequestError


def test_every_filter_reaches_the_store():
    after = datetime(2026, 11, 1, tzinfo=UTC)
    got = task_filter(
        status=["complete,failed", " Pending "],
        submitted_after=after,
        submitted_before=after + timedelta(days=1),
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
    naive = task_filter(submitted_after=datetime(2026, 11, 1, 8, 30))  # noqa: DTZ001 - what a client may send
    assert naive.submitted_after == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    aware = task_filter(submitted_before=datetime(2026, 11, 1, 10, 30, tzinfo=plus_two))
    assert aware.submitted_before == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"status": ["DONE"]}, "unknown status 'DONE'"),
        (
            {
                "submitted_after": datetime(2026, 2, 1, tzinfo=UTC),
                "submitted_before": datetime(2026, 1, 1, tzinfo=UTC),
            },
            "submitted_before must be later",
        ),
    ],
)
def test_bad_filters_say_what_is_wrong(fields, words):
    with pytest.raises(InvalidRequestError, match=words):
        task_filter(**fields)
