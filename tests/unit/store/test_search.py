"""Full-text search over transcripts and summaries, on a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from maie.errors import InvalidRequestError
from maie.schemas import StageName, TaskRequest, TaskStatus
from maie.store.sql import TaskFilter
from tests.fixtures.records import make_record
from tests.fixtures.results import make_enhanced, make_result


@pytest.fixture
def add(async_store, store):
    """Store a finished task of ``tenant`` with a result (and, for clean text, its enhance artifact)."""

    async def add(
        result, *, tenant="acme", clean=None, at=None, template_id=None, status=TaskStatus.COMPLETE
    ):
        record = make_record(str(uuid.uuid4()))
        record.tenant = tenant
        record.submitted_at = at or datetime.now(UTC)
        record.request = TaskRequest(
            features=record.request.features,
            asr_backend="whisper",
            template_id=template_id,
            filename="call.wav",
        )
        await async_store.create(record)
        if clean:
            store.put_artifact(record.task_id, StageName.ENHANCE, make_enhanced(*clean))
        assert store.put_result(record.task_id, result)
        store.update(record.task_id, lambda r: setattr(r, "status", status))
        return record

    return add


async def _ids(store, query, tenant="acme", **kwargs):
    hits, _ = await store.search(tenant, query, **kwargs)
    return [h.task_id for h in hits]


class TestMatching:
    """What a query finds."""

    async def test_a_phrase_is_found_for_its_own_tenant_only(self, async_store, add):
        mine = await add(make_result("we agreed on the budget for the new office", "then lunch"))
        theirs = await add(make_result("the budget for the new office is late"), tenant="other")
        await add(make_result("nothing about it"))
        assert await _ids(async_store, '"new office"') == [mine.task_id]
        assert await _ids(async_store, '"new office"', tenant="other") == [theirs.task_id]
        assert await _ids(async_store, '"new office"', tenant="nobody") == []

    async def test_phrases_need_their_words_in_order(self, async_store, add):
        task = await add(make_result("the office budget was cut"))
        assert await _ids(async_store, '"budget office"') == []
        assert await _ids(async_store, "budget office") == [task.task_id]
        assert await _ids(async_store, "budget -office") == []
        assert await _ids(async_store, "budget or unicorn") == [task.task_id]

    async def test_language_configuration_stems_and_simple_does_not(self, async_store, add):
        english = await add(make_result("the meetings ran long"), at=datetime.now(UTC) - timedelta(seconds=1))
        simple = await add(make_result("CUỘC HỌP meetings kéo dài", language="vi"))
        assert await _ids(async_store, "meeting") == [english.task_id]  # english stems, simple does not
        assert await _ids(async_store, "meetings") == [simple.task_id, english.task_id]
        assert await _ids(async_store, "cuộc họp") == [simple.task_id]  # case folded beyond ASCII

    async def test_summary_is_searched(self, async_store, add):
        summary = {"title": "Quarterly plan", "action_items": ["buy chairs", {"owner": "Ann"}]}
        task = await add(make_result("we talked", summary=summary))
        hits, _ = await async_store.search("acme", "chairs")
        assert [h.task_id for h in hits] == [task.task_id]
        assert [(s.source, s.id) for s in hits[0].segments] == [("summary", None)]
        assert "<mark>chairs</mark>" in hits[0].segments[0].snippet

    async def test_query_checks(self, async_store):
        for query in ("", "   ", "x" * 501):
            with pytest.raises(InvalidRequestError):
                await async_store.search("acme", query)
        assert await async_store.search("acme", "anything") == ([], None)


class TestHits:
    """What a hit says."""

    async def test_segments_with_times_and_escaped_highlighted_snippets(self, async_store, add):
        task = await add(
            make_result("hello there", "the <script> budget & plan", "more budget talk", "bye"),
            template_id="meeting_notes_v1",
        )
        hits, cursor = await async_store.search("acme", "budget")
        assert cursor is None
        (hit,) = hits
        assert (hit.task_id, hit.filename, hit.status, hit.template_id, hit.matches) == (
            task.task_id, "call.wav", TaskStatus.COMPLETE, "meeting_notes_v1", 2,
        )  # fmt: skip
        assert hit.submitted_at == task.submitted_at
        assert [(s.source, s.id, s.start, s.end) for s in hit.segments] == [
            ("raw", 1, 5.0, 9.5),
            ("raw", 2, 10.0, 14.5),
        ]
        assert hit.segments[0].snippet == "the &lt;script&gt; <mark>budget</mark> &amp; plan"

    async def test_a_segment_matching_in_both_transcripts_is_shown_once_as_clean(self, async_store, add):
        await add(
            make_result("uh the budgit is", "fine", clean=["The budget is.", "Fine."]),
            clean=["The budget is.", "Fine."],
        )
        await add(make_result("budget only raw here", clean=["Something else."]), clean=["Something else."])
        hits, _ = await async_store.search("acme", "budget is")
        sources = sorted((h.segments[0].source, h.segments[0].id, h.matches) for h in hits)
        assert sources == [("clean", 0, 1), ("raw", 0, 1)]

    async def test_many_matches_are_capped_but_counted(self, async_store, add):
        await add(make_result(*[f"budget line {n}" for n in range(12)]))
        (hit,), _ = await async_store.search("acme", "budget")
        assert hit.matches == 12
        assert [s.id for s in hit.segments] == [0, 1, 2, 3, 4]


class TestNewestVersion:
    """The index follows the newest result version."""

    async def test_a_resummary_replaces_the_summary_text(self, async_store, store, add):
        task = await add(make_result("we talked", summary={"title": "old plan"}))
        store.add_result(
            task.task_id,
            lambda n: make_result("we talked", version=n, summary={"title": "fresh idea"}, kind="resummary"),
        )
        assert await _ids(async_store, "fresh") == [task.task_id]
        assert await _ids(async_store, "old") == []
        assert await _ids(async_store, "talked") == [task.task_id]


class TestFiltersAndPaging:
    """Search pages and filters like the task list."""

    async def test_paging_newest_first(self, async_store, add):
        base = datetime.now(UTC) - timedelta(hours=1)
        tasks = [await add(make_result(f"budget {n}"), at=base + timedelta(minutes=n)) for n in range(5)]
        await add(make_result("unrelated"))
        seen, cursor, pages = [], None, 0
        while True:
            hits, cursor = await async_store.search("acme", "budget", limit=2, cursor=cursor)
            seen += [h.task_id for h in hits]
            pages += 1
            if cursor is None:
                break
        assert seen == [t.task_id for t in reversed(tasks)]
        assert pages == 3

    async def test_filters(self, async_store, add):
        now = datetime.now(UTC)
        old = await add(make_result("budget"), at=now - timedelta(days=3), template_id="meeting_notes_v1")
        failed = await add(make_result("budget"), status=TaskStatus.FAILED)

        async def ids(**filters):
            return await _ids(async_store, "budget", filters=TaskFilter(**filters))

        assert await ids(statuses=frozenset({"FAILED"})) == [failed.task_id]
        assert await ids(template_id="meeting_notes_v1") == [old.task_id]
        assert await ids(submitted_before=now - timedelta(days=1)) == [old.task_id]
        assert await ids(submitted_after=now - timedelta(days=1)) == [failed.task_id]
        assert await ids(batch_id="none") == []


class TestStrategies:
    """Reading the newest tasks first, or the GIN index when the query is rare: the same answers."""

    async def test_rare_and_common_queries_page_alike(self, async_store, add, monkeypatch):
        from maie.store.sql import search

        monkeypatch.setattr(search, "WALK_BUDGET", 3)
        base = datetime.now(UTC) - timedelta(hours=1)
        tasks = [
            await add(
                make_result(f"budget talk {'rareword' if n < 2 else 'plain'}"), at=base + timedelta(minutes=n)
            )
            for n in range(10)
        ]
        # Only the two oldest say the rare word: beyond the three tasks read first, found through the index.
        hits, cursor = await async_store.search("acme", "rareword", limit=5)
        assert [h.task_id for h in hits] == [tasks[1].task_id, tasks[0].task_id]
        assert cursor is None
        # Every task says the common word: the newest ones fill the page straight away.
        hits, cursor = await async_store.search("acme", "budget", limit=2)
        assert [h.task_id for h in hits] == [tasks[9].task_id, tasks[8].task_id]
        hits, _ = await async_store.search("acme", "budget", limit=2, cursor=cursor)
        assert [h.task_id for h in hits] == [tasks[7].task_id, tasks[6].task_id]


class TestPhrases:
    """A phrase matches within one segment, found through its word pairs."""

    async def test_a_phrase_does_not_span_segments(self, async_store, add):
        task = await add(make_result("the new budget", "office opens"))
        hyphenated = await add(make_result("a well-known plan"))
        assert await _ids(async_store, '"budget office"') == []
        assert await _ids(async_store, '"new budget"') == [task.task_id]
        assert await _ids(async_store, "well-known") == [hyphenated.task_id]  # parsed as a phrase too

    async def test_words_in_different_segments_show_the_segments_of_each(self, async_store, add):
        task = await add(make_result("the new budget", "nothing here", "office opens"))
        (hit,), _ = await async_store.search("acme", "budget office")
        assert hit.task_id == task.task_id
        assert [s.id for s in hit.segments] == [0, 2]

    @pytest.mark.parametrize(
        ("parsed", "pairs"),
        [
            ("'bapa' <-> 'bagu'", "'bapa bagu'"),
            ("'a' <-> 'b' <-> 'c' & 'd'", "'a b' & 'b c'"),
            ("'o''brien' <-> 'said'", "'o''brien said'"),
            ("'a' & 'b'", None),
            ("'a' <-> 'b' | 'c'", None),
            ("!'a' <-> 'b'", None),
            ("'budget' <2> 'office'", None),
        ],
    )
    def test_word_pairs(self, parsed, pairs):
        from maie.store.sql.search import word_pairs

        assert word_pairs(parsed) == pairs
