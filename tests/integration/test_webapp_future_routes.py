"""The web app with routes the API is about to have: speakers, deletion and paged search.

TEST DOUBLE: those routes answer from the browser's router (Playwright's ``page.route``), in the
shapes their issues define, and the page's feature list is switched on for them; the task, its
transcript, audio and templates are real, from ``maie up`` (tests/fixtures/webapp.py). Once the
routes exist the page finds them by itself (tests/unit/web/test_features.py).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fixtures.services import KEY_A
from tests.fixtures.webapp import HOSTILE_NAME, WEBAPP_GROUP

pytestmark = pytest.mark.xdist_group(WEBAPP_GROUP)


def features_on(*names):
    """A route handler serving the real page with ``names`` switched on in its feature list."""

    def handle(route):
        response = route.fetch()
        body = response.text()
        for name in names:
            body = body.replace(f"&#34;{name}&#34;:false", f"&#34;{name}&#34;:true")
        route.fulfill(response=response, body=body)

    return handle


class TestWhenTheApiHasMore:
    """Speakers (issue 9), deletion and paged search (issue 12) as the page will meet them, and a
    search route that answers 404 (a server without search behind it).

    TEST DOUBLE: routes this API does not have yet answer from the browser's router, in the
    shapes those issues define, and the page's feature list is switched on for them; the task,
    its transcript, audio and templates are the real ones. Once the routes exist the page
    finds them by itself (tests/unit/web/test_features.py).
    """

    def test_speakers_are_shown_renamed_in_place_and_exported(self, spoken, watched, shots):
        real = spoken
        task_id = real["task_id"]
        versions = [{"version": 1, "created_at": real["completed_at"], "kind": "pipeline"}]
        state = {"status": diarized(real)}
        sent = []

        def patch_speakers(route):
            sent.append((route.request.headers.get("x-api-key"), route.request.post_data_json))
            state["status"] = renamed(state["status"], route.request.post_data_json["names"])
            versions.append({"version": 2, "created_at": real["completed_at"], "kind": "speakers"})
            route.fulfill(status=200, json={"task_id": task_id, "result_version": 2})

        page = watched.page
        watched.sign_in()
        page.route(f"**/tasks/{task_id}", features_on("rename_speakers", "rttm"))
        page.route("**/events", lambda route: route.abort())
        page.route(f"**/v1/status/{task_id}", lambda route: route.fulfill(json=state["status"]))
        page.route(
            f"**/v1/tasks/{task_id}/results",
            lambda route: route.fulfill(
                json={"task_id": task_id, "latest": len(versions), "versions": versions}
            ),
        )
        page.route(f"**/v1/tasks/{task_id}/speakers", patch_speakers)
        page.route(
            f"**/v1/tasks/{task_id}/transcript.rttm?*",
            lambda route: route.fulfill(body="SPEAKER jfk 1 0.030 7.710 <NA> <NA> SPEAKER_00 <NA> <NA>\n"),
        )
        page.goto(f"/tasks/{task_id}")
        watched.wait_complete()
        chips = page.get_by_test_id("speaker")
        assert chips.first.inner_text() == "SPEAKER_00"
        assert page.locator("#speakers li").count() == 2

        page.locator("#speakers li[data-speaker=SPEAKER_00] [data-testid=rename-speaker]").click()
        field = page.locator("#speakers input.rename")
        field.fill("John F. Kennedy")
        field.press("Enter")
        page.locator(
            "#speakers li[data-speaker=SPEAKER_00] [data-testid=speaker-name]", has_text="John F. Kennedy"
        ).wait_for()
        assert sent == [(KEY_A, {"names": {"SPEAKER_00": "John F. Kennedy"}})]
        assert chips.first.inner_text() == "John F. Kennedy"
        assert page.locator("#version-row").is_visible()
        page.screenshot(path=shots / "speakers.png")

        with page.expect_download() as download:
            page.get_by_test_id("download-rttm").click()
        assert Path(download.value.path()).read_text().startswith("SPEAKER jfk 1")
        assert watched.dialogs == []

    def test_search_hits_and_deletion(self, spoken, watched, shots):
        task_id = spoken["task_id"]
        hit = {
            "task_id": task_id,
            "filename": HOSTILE_NAME,
            "submitted_at": "2026-11-21T01:04:04.674Z",
            "status": "COMPLETE",
            "matches": 1,
            "segments": [
                {
                    "source": "raw",
                    "id": 0,
                    "start": 0.0,
                    "end": 7.7,
                    "speaker": "SPEAKER_00",
                    "snippet": "ask not what your &lt;b&gt;own&lt;/b&gt; <mark>country</mark> can do",
                }
            ],
        }
        state = {"hits": [hit]}
        deleted = []

        def delete_task(route):
            if route.request.method != "DELETE":
                route.fallback()
                return
            deleted.append(route.request.headers.get("x-api-key"))
            state["hits"] = []
            route.fulfill(status=204)

        page = watched.page
        watched.sign_in()
        page.route(re.compile(r".*/$"), features_on("search", "delete"))
        page.route(
            "**/v1/search?*", lambda route: route.fulfill(json={"hits": state["hits"], "next_cursor": None})
        )
        page.route(f"**/v1/tasks/{task_id}", delete_task)
        page.goto("/")
        search = page.get_by_test_id("search")
        search.fill("country")
        search.press("Enter")
        row = page.locator(f"[data-testid=task-row][data-task-id='{task_id}']")
        row.wait_for()
        assert row.locator("a.name").inner_text() == HOSTILE_NAME
        snippet = row.locator(".snippet")
        assert snippet.inner_text() == "ask not what your <b>own</b> country can do"
        assert snippet.locator("mark").all_inner_texts() == ["country"]
        assert snippet.locator("b").count() == 0
        assert row.locator(".snippets a").first.get_attribute("href") == f"/tasks/{task_id}#segment-0"

        page.screenshot(path=shots / "search-hits.png")
        row.get_by_test_id("delete").click()
        dialog = page.locator("dialog#confirm")
        assert HOSTILE_NAME in dialog.inner_text()
        page.screenshot(path=shots / "delete.png")
        dialog.locator("button[value=yes]").click()
        page.locator("#library-message", has_text="Deleted").wait_for()
        assert deleted == [KEY_A]
        assert row.count() == 0
        assert watched.dialogs == []

    def test_search_results_come_a_page_at_a_time(self, watched):
        def hit(name):
            return {
                "task_id": str(uuid.uuid4()),
                "filename": name,
                "submitted_at": "2026-11-21T01:04:04.674Z",
                "status": "PENDING",
                "matches": 1,
                "segments": [
                    {"source": "raw", "id": 0, "start": 0.0, "end": 1.0, "snippet": "<mark>budget</mark>"}
                ],
            }

        first, second = hit("monday.wav"), hit("tuesday.wav")
        asked = []

        def answer(route):
            query = parse_qs(urlsplit(route.request.url).query)
            asked.append(query.get("cursor", [None])[0])
            if "cursor" in query:
                route.fulfill(json={"hits": [second], "next_cursor": None})
            else:
                route.fulfill(json={"hits": [first], "next_cursor": "page-2"})

        page = watched.page
        watched.sign_in()
        page.route(re.compile(r".*/$"), features_on("search"))
        page.route("**/v1/search?*", answer)
        page.goto("/")
        search = page.get_by_test_id("search")
        search.fill("budget")
        search.press("Enter")
        names = page.locator("[data-testid=task-row] a.name")
        names.filter(has_text="monday.wav").wait_for()
        page.locator("#page-older").click()
        names.filter(has_text="tuesday.wav").wait_for()
        assert names.all_inner_texts() == ["tuesday.wav"]
        assert page.locator("#page-older").is_disabled()
        assert page.inner_text("#page-label") == "Page 2"
        page.locator("#page-newer").click()
        names.filter(has_text="monday.wav").wait_for()
        assert asked == [None, "page-2", None]
        assert watched.errors == []

    def test_a_search_route_that_answers_404_falls_back_to_filtering(self, spoken, watched):
        task_id = spoken["task_id"]
        asked = []

        def no_search(route):
            asked.append(route.request.url)
            route.fulfill(status=404, json={"status_code": 404, "detail": "Not Found"})

        page = watched.page
        watched.sign_in()
        page.route(re.compile(r".*/$"), features_on("search"))
        page.route("**/v1/search?*", no_search)
        page.goto("/")
        row = page.locator(f"[data-testid=task-row][data-task-id='{task_id}']")
        row.wait_for()
        search = page.get_by_test_id("search")
        assert search.get_attribute("placeholder") == "Search transcripts and summaries"
        search.fill("country")
        search.press("Enter")
        page.locator("#library-message", has_text="mention “country”").wait_for()
        assert row.is_visible()
        assert search.get_attribute("placeholder") == "Filter this page by name or words"
        assert page.locator("#library-message.error").count() == 0
        # From then on the page filters without asking again.
        search.fill("zebra crossing")
        search.press("Enter")
        page.locator("#library-message", has_text="mention “zebra crossing”").wait_for()
        assert not row.is_visible()
        assert len(asked) == 1
        assert all("Failed to load resource" in e for e in watched.errors), watched.errors


def diarized(status):
    """``status`` as a diarized task's: two speakers taking turns (the shape of issue 9)."""
    body = json.loads(json.dumps(status))
    segments = body["results"]["segments"]
    for index, segment in enumerate(segments):
        segment["speaker"] = f"SPEAKER_0{index % 2}"
    body["results"]["speakers"] = [
        {
            "id": label,
            "speaking_time_s": sum(s["end"] - s["start"] for s in segments if s["speaker"] == label),
            "segment_count": sum(s["speaker"] == label for s in segments),
        }
        for label in ("SPEAKER_00", "SPEAKER_01")
    ]
    return body


def renamed(status, names):
    """``status`` after a rename: a new version in which the names replace the labels."""
    body = json.loads(json.dumps(status))
    for segment in body["results"]["segments"]:
        segment["speaker"] = names.get(segment["speaker"], segment["speaker"])
    for speaker in body["results"]["speakers"]:
        if speaker["id"] in names:
            speaker["name"] = names[speaker["id"]]
    body["result_version"] = 2
    return body
