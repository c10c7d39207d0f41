"""The web app with speakers, search and deletion, in a real browser against the real routes.

A person uploads the four-speaker AMI excerpt through the upload page with the speakers told
apart (PocketSphinx with word timings, so a line is split where the speaker changes; the embedded
diarizer on Resemblyzer's weights), watches it finish, reads who spoke on each line, renames a
speaker in place (the name stays after a reload), downloads RTTM, finds the recording by a word
spoken in it with the search box, and deletes it. Search results are paged by the server's own
cursors. The stack and the browser are shared with the other webapp modules
(tests/fixtures/webapp.py); this module adds one task to it.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from maie.pipeline.diarization import read_rttm
from tests.fixtures.paths import shared_audio
from tests.fixtures.services import HEADERS_A, TASK_TIMEOUT_S
from tests.fixtures.webapp import WEBAPP_GROUP, wait_until

pytestmark = pytest.mark.xdist_group(WEBAPP_GROUP)

AMI = "pyannote/ami_mixture_4spk.wav"
#: A word of the meeting ("the design of a remote control"), in its reference and heard by PocketSphinx.
WORD = "remote"
NAME = "Ana López"


def line_speakers(page):
    """The speaker shown on each transcript line, in order."""
    return [
        line.locator("[data-testid=speaker]").inner_text() for line in page.get_by_test_id("segment").all()
    ]


def on_page(page, number):
    """Wait until the library shows page ``number`` of a search's results."""
    wait_until(page, f"document.querySelector('#library-message').textContent.includes('(page {number})')")


def at_top(page, timeout_s=10):
    """Scroll to the top and wait until the page stays there (a smooth scroll may still be running)."""
    settled = page.evaluate(
        """async (limit) => {
            const until = Date.now() + limit;
            const frame = () => new Promise((done) => setTimeout(done, 100));
            while (Date.now() < until) {
                window.scrollTo({ top: 0, behavior: "instant" });
                await frame();
                if (window.scrollY === 0) {
                    await frame();
                    if (window.scrollY === 0) return true;
                }
            }
            return false;
        }""",
        timeout_s * 1000,
    )
    assert settled, "the page kept scrolling"


def speaker_row(page, label):
    return page.locator(f"#speakers li[data-speaker={label}]")


class TestAMeeting:
    def test_upload_with_speakers_rename_export_find_and_delete(self, webapp_stack, watched, shots):
        api = webapp_stack[0]
        assert WORD in shared_audio("pyannote/ami_mixture_4spk.txt").read_text().lower()
        page = watched.page
        watched.sign_in()
        watched.upload(str(shared_audio(AMI)), diarize=True, screenshot=shots / "upload-speakers.png")
        page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
        task_id = page.url.rsplit("/", 1)[1]
        watched.wait_complete()

        # Every line names its speaker, as the API has it; more than one speaker takes turns.
        status = httpx.get(f"{api.url}/v1/status/{task_id}", headers=HEADERS_A).json()
        lines = [s for s in status["results"]["segments"] if s["text"].strip()]
        labels = line_speakers(page)
        assert labels == [s["speaker"] for s in lines]
        assert len(set(labels)) >= 2, labels
        assert page.locator("#speakers li").count() == len(status["results"]["speakers"]) >= 2
        assert "diarize" in page.locator("#stages .stage-name").all_inner_texts()
        assert WORD in " ".join(page.get_by_test_id("segment").all_inner_texts()).lower()

        speaker_row(page, "SPEAKER_00").get_by_test_id("rename-speaker").click()
        field = page.locator("#speakers input.rename")
        field.fill(NAME)
        field.press("Enter")
        speaker_row(page, "SPEAKER_00").get_by_test_id("speaker-name").filter(has_text=NAME).wait_for()
        renamed = [NAME if label == "SPEAKER_00" else label for label in labels]
        assert line_speakers(page) == renamed
        assert page.input_value("#version") == "2"
        page.reload()
        watched.wait_complete()
        speaker_row(page, "SPEAKER_00").get_by_test_id("speaker-name").filter(has_text=NAME).wait_for()
        assert line_speakers(page) == renamed
        page.get_by_test_id("summary").wait_for()
        # The kept recording plays from a line of the renamed speaker.
        wait_until(page, "document.querySelector('[data-testid=audio]').readyState >= 1")
        line = page.get_by_test_id("segment").nth(renamed.index(NAME, 1))
        start = float(line.get_attribute("data-start"))
        line.click()
        wait_until(page, f"document.querySelector('[data-testid=audio]').currentTime >= {start - 0.05}")
        page.evaluate("document.querySelector('[data-testid=audio]').pause()")
        assert "playing" in line.get_attribute("class")
        page.mouse.move(0, 0)
        at_top(page)
        page.screenshot(path=shots / "speakers.png")

        with page.expect_download() as download:
            page.get_by_test_id("download-rttm").click()
        assert download.value.suggested_filename == "ami_mixture_4spk.rttm"
        turns = read_rttm(Path(download.value.path()).read_text(encoding="utf-8"), file_id=task_id)
        # RTTM fields are separated by whitespace: the export writes the name's space as "_".
        assert NAME.replace(" ", "_") in {t.speaker for t in turns}
        assert "SPEAKER_00" not in {t.speaker for t in turns}

        self.find_and_delete(page, api, task_id, shots)
        assert watched.errors == []
        assert watched.dialogs == []

    @staticmethod
    def find_and_delete(page, api, task_id, shots):
        page.goto("/")
        search = page.get_by_test_id("search")
        search.fill(WORD)
        search.press("Enter")
        # The library's own listing shows the row too: wait for the search's answer, not the row.
        page.locator("#library-message", has_text=re.compile(rf"match(es)? “{re.escape(WORD)}”")).wait_for()
        row = page.locator(f"[data-testid=task-row][data-task-id='{task_id}']")
        row.wait_for()
        assert row.locator("a.name").inner_text() == Path(AMI).name
        marks = row.locator(".snippet mark").all_inner_texts()
        assert marks
        assert {m.lower() for m in marks} == {WORD}
        assert row.locator(".snippet *:not(mark)").count() == 0, "snippets are text and marks only"
        assert row.locator(".snippets .speaker-chip").count() >= 1
        first = row.locator(".snippets a.time").first
        assert re.fullmatch(rf"/tasks/{task_id}#segment-\d+", first.get_attribute("href"))
        page.screenshot(path=shots / "search-hits.png")

        row.get_by_test_id("delete").click()
        dialog = page.locator("dialog#confirm")
        assert Path(AMI).name in dialog.inner_text()
        dialog.locator("button[value=yes]").click()
        page.locator("#library-message", has_text="Deleted").wait_for()
        assert row.count() == 0
        # It was the newest: were it still there, it would be the library's first row.
        page.goto("/")
        wait_until(page, "!document.querySelector('#task-rows').textContent.includes('Loading')")
        assert row.count() == 0
        assert httpx.get(f"{api.url}/v1/status/{task_id}", headers=HEADERS_A).status_code == 404


class TestSearch:
    def test_results_come_a_page_at_a_time(self, webapp_stack, spoken, watched):
        """The server's hits and cursors; the browser's router only asks for one hit a page (the
        page asks for 20), so that two recordings make two pages."""
        api = webapp_stack[0]
        other = api.submit(shared_audio("jfk_16k.wav"), asr_backend="pocketsphinx")
        assert api.wait(other.json()["task_id"])["status"] == "COMPLETE"
        first = api.client.get("/v1/search", params={"q": "country", "limit": 3}, headers=HEADERS_A).json()
        expected = [hit["task_id"] for hit in first["hits"]]
        assert len(expected) >= 2, first
        more = first["next_cursor"] is not None

        def one_a_page(route):
            parts = urlsplit(route.request.url)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"limit": "1"}
            route.continue_(url=parts._replace(query=urlencode(query)).geturl())

        page = watched.page
        watched.sign_in()
        page.route("**/v1/search?*", one_a_page)
        page.goto("/")
        search = page.get_by_test_id("search")
        search.fill("country")
        search.press("Enter")
        seen = []
        for number in range(1, len(expected) + 1):
            wait_until(
                page, f"document.querySelector('#library-message').textContent.includes('(page {number})')"
            )
            rows = page.get_by_test_id("task-row")
            assert rows.count() == 1
            seen.append(rows.get_attribute("data-task-id"))
            assert page.inner_text("#page-label") == f"Page {number}"
            if number < len(expected):
                page.locator("#page-older").click()
        assert seen == expected
        assert page.locator("#page-older").is_disabled() is not more
        page.locator("#page-newer").click()
        back = len(expected) - 1
        on_page(page, back)
        assert page.get_by_test_id("task-row").get_attribute("data-task-id") == expected[back - 1]
        assert watched.errors == []

    def test_a_search_route_that_answers_404_falls_back_to_filtering(self, spoken, watched):
        """TEST DOUBLE: the search route answers 404 from the browser's router, as a server without
        search does; this server always has search, so it cannot be made to say that itself."""
        task_id = spoken["task_id"]
        asked = []

        def no_search(route):
            asked.append(route.request.url)
            route.fulfill(status=404, json={"status_code": 404, "detail": "Not Found"})

        page = watched.page
        watched.sign_in()
        page.route("**/v1/search?*", no_search)
        page.goto("/")
        row = page.locator(f"[data-testid=task-row][data-task-id='{task_id}']")
        row.wait_for()
        search = page.get_by_test_id("search")
        assert search.get_attribute("placeholder") == "Search transcripts and summaries"
        search.fill("country")
        search.press("Enter")
        page.locator("#library-message", has_text="mention “country”").wait_for(timeout=TASK_TIMEOUT_S * 1000)
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
