"""The web app in a real browser: Chromium (Debian's package) driven by Playwright, against
``maie up`` (its Redis, the API and a real worker) keeping audio, with the OpenAI-compatible LLM
test server (a TEST DOUBLE of an LLM, tests/fixtures/llm_server.py) writing summaries.

A person's path through it: sign in, upload a real recording, watch it finish live, read a spoken
word, click a line and hear it from there, follow a summary's citation, download SRT, search, sign
out; a file name carrying HTML stays text; the API's errors reach the page in its own words; the
live status falls back to polling when the stream is cut. No console error and no dialog anywhere.

Screenshots go to a temporary folder (its path is printed), or to ``MAIE_WEBAPP_SCREENSHOTS``.
The stack and the browser are shared with test_webapp_http.py and test_webapp_speakers_search.py
(tests/fixtures/webapp.py). Without Chromium the module skips, except under ``CI=true``, where it
fails: CI installs it (``.ci/run``).
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.fixtures.paths import shared_audio
from tests.fixtures.services import HEADERS_A, KEY_A, TASK_TIMEOUT_S
from tests.fixtures.webapp import HOSTILE_NAME, WEBAPP_GROUP, Watched, wait_until

pytestmark = pytest.mark.xdist_group(WEBAPP_GROUP)


@pytest.fixture(scope="module")
def stack(webapp_stack):
    return webapp_stack


def current_time(page):
    return page.evaluate("document.querySelector('[data-testid=audio]').currentTime")


def listen_from_a_line(page, line):
    """Click ``line``: the recording plays from its start, and it is the line highlighted."""
    wait_until(page, "document.querySelector('[data-testid=audio]').readyState >= 1")
    start = float(line.get_attribute("data-start"))
    assert start > 0
    line.click()
    wait_until(page, f"document.querySelector('[data-testid=audio]').currentTime >= {start - 0.05}")
    page.evaluate("document.querySelector('[data-testid=audio]').pause()")
    assert start - 0.05 <= current_time(page) < start + 3
    assert "playing" in line.get_attribute("class")


def follow_a_citation(page):
    """The notes: sections headed from the template's schema, citations that play their line."""
    summary = page.get_by_test_id("summary")
    summary.wait_for()
    assert "Decisions" in summary.locator("h3").all_inner_texts()
    cite = summary.locator("a.cite").first
    cited = page.locator(f"#segment-{cite.get_attribute('data-segment')}")
    cite.click()
    wait_until(
        page,
        "document.querySelector('.segment.playing')?.id === " + json.dumps(cited.get_attribute("id")),
    )
    cited_start = float(cited.get_attribute("data-start"))
    wait_until(
        page, f"Math.abs(document.querySelector('[data-testid=audio]').currentTime - {cited_start}) < 3"
    )
    page.evaluate("document.querySelector('[data-testid=audio]').pause()")


class TestAPersonsPath:
    def test_sign_in_upload_watch_listen_follow_the_notes_and_download(self, watched, shots):
        page = watched.page
        page.goto("/")
        page.wait_for_url("**/sign-in**")
        page.screenshot(path=shots / "sign-in.png")
        watched.sign_in()
        assert page.get_by_test_id("tenant").inner_text() == "tenant-a"

        clip = shared_audio("jfk.flac")
        watched.upload(str(clip))
        page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
        task_id = page.url.rsplit("/", 1)[1]
        page.screenshot(path=shots / "task-running.png")
        watched.wait_complete()
        # The status came over the event stream, not by polling.
        assert page.get_attribute("#transport", "data-transport") == "stream"
        assert page.inner_text("#task-name") == clip.name

        segments = page.get_by_test_id("segment")
        assert "country" in " ".join(segments.all_inner_texts())
        starts = [float(s.get_attribute("data-start")) for s in segments.all()]
        assert starts == sorted(starts)

        listen_from_a_line(page, segments.last)
        follow_a_citation(page)
        page.mouse.move(0, 0)
        page.screenshot(path=shots / "task.png")

        with page.expect_download() as download:
            page.get_by_test_id("download-srt").click()
        assert download.value.suggested_filename == "jfk.srt"
        srt = Path(download.value.path()).read_text(encoding="utf-8")
        assert "-->" in srt
        assert "country" in srt

        page.goto("/")
        row = page.locator(f"[data-testid=task-row][data-task-id='{task_id}']")
        row.wait_for()
        wait_until(
            page,
            f"document.querySelector(\"[data-task-id='{task_id}'] [data-col=duration]\").textContent !== '—'",
        )
        assert row.locator("[data-col=duration]").inner_text() == "0:11"
        page.screenshot(path=shots / "library.png")

        # The key was never part of a URL, and signing out forgets it.
        assert not [url for url in watched.urls if KEY_A in url]
        page.get_by_test_id("sign-out").click()
        page.wait_for_url("**/sign-in")
        assert page.evaluate("sessionStorage.length") == 0
        page.goto(f"/tasks/{task_id}")
        page.wait_for_url("**/sign-in**")
        assert watched.errors == []
        assert watched.dialogs == []

    def test_search_finds_the_spoken_word(self, spoken, watched, shots):
        task_id = spoken["task_id"]
        page = watched.page
        watched.sign_in()
        row = page.locator(f"[data-testid=task-row][data-task-id='{task_id}']")
        row.wait_for()
        search = page.get_by_test_id("search")
        search.fill("country")
        search.press("Enter")
        # The row was there before the search: wait for what the search (or the filter) answered.
        page.locator("#library-message", has_text=re.compile(r"(match(es)?|mention) “country”")).wait_for()
        assert row.is_visible()
        page.screenshot(path=shots / "search.png")
        search.fill("zebra crossing")
        search.press("Enter")
        wait_until(
            page,
            f"!document.querySelector(\"[data-testid=task-row][data-task-id='{task_id}']\")?.checkVisibility()",
        )
        assert watched.errors == []


class TestUploads:
    def test_one_file_dropped_and_one_chosen_go_as_a_batch(self, stack, watched, shots):
        api = stack[0]
        page = watched.page
        watched.sign_in()
        page.goto("/upload")
        page.wait_for_selector("#asr-backend option[value=pocketsphinx]", state="attached")
        recording = shared_audio("jfk_16k.wav")
        dropped = page.evaluate_handle(
            """([name, data]) => {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, { type: "audio/wav" }));
                return transfer;
            }""",
            ["dropped.wav", base64.b64encode(recording.read_bytes()).decode()],
        )
        page.dispatch_event("#drop", "dragenter", {"dataTransfer": dropped})
        assert "over" in page.get_attribute("#drop", "class")
        page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
        page.get_by_test_id("upload-file").set_input_files(str(recording))
        assert page.locator("#file-list .file-name").all_inner_texts() == ["dropped.wav", recording.name]
        submit = page.get_by_test_id("upload-submit")
        assert submit.inner_text() == "Upload as a batch"
        page.select_option("#asr-backend", "pocketsphinx")
        page.set_checked("input[value=summary]", checked=False)
        submit.click()

        outcome = page.locator("#upload-result")
        outcome.locator("h2", has_text="2 recordings submitted").wait_for()
        links = outcome.locator("a[href^='/tasks/']")
        assert links.count() == 2
        task_ids = [link.get_attribute("href").rsplit("/", 1)[1] for link in links.all()]
        names = {api.wait(task_id)["filename"] for task_id in task_ids}
        assert names == {"dropped.wav", recording.name}
        # The page follows the batch: each line gets its file's name, then its final status.
        for task_id in task_ids:
            page.locator(f"#upload-result li[data-task-id='{task_id}'] [data-status=COMPLETE]").wait_for()
        assert set(links.all_inner_texts()) == names
        page.screenshot(path=shots / "batch.png")
        links.first.click()
        watched.wait_complete()
        assert "country" in " ".join(page.get_by_test_id("segment").all_inner_texts())
        assert watched.errors == []


class TestSafety:
    def test_a_file_name_carrying_html_is_shown_as_text_and_never_runs(self, watched):
        page = watched.page
        watched.sign_in()
        recording = shared_audio("jfk_16k.wav").read_bytes()
        watched.upload({"name": HOSTILE_NAME, "mimeType": "audio/wav", "buffer": recording}, summary=False)
        page.wait_for_url(re.compile(r"/tasks/"))
        watched.wait_complete()
        assert page.inner_text("#task-name") == HOSTILE_NAME
        page.goto("/")
        page.locator("[data-testid=task-row] a.name", has_text=HOSTILE_NAME).first.wait_for()
        assert page.locator("main img").count() == 0
        assert watched.dialogs == []
        assert watched.errors == []

    def test_api_errors_reach_the_page_in_the_apis_words(self, watched):
        page = watched.page
        page.goto("/sign-in")
        page.get_by_test_id("api-key").fill("not-a-key")
        page.get_by_test_id("sign-in").click()
        assert page.locator("#sign-in-message.error").inner_text() == "401: invalid API key"
        watched.sign_in()

        watched.upload(
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"minutes, not audio"}, summary=False
        )
        message = page.locator("#upload-message.error")
        message.wait_for()
        assert message.inner_text().startswith("415: the file is not audio MAIE can decode")

        page.locator("#file-list button").click()
        recording = shared_audio("jfk_16k.wav")
        page.get_by_test_id("upload-file").set_input_files(str(recording))
        page.select_option("#language", "de")
        page.get_by_test_id("upload-submit").click()
        wait_until(page, "document.querySelector('#upload-message').textContent.startsWith('422: ')")
        assert "does not transcribe language 'de'" in message.inner_text()

        # TEST DOUBLE for the answer only: a full queue is hard to make on purpose, so this 429 is
        # the API's own shape and headers served by the browser's router; the page's handling is real.
        detail = "12 tasks are waiting (limit MAIE_MAX_QUEUE_DEPTH=12); retry after 17 s"
        page.route(
            "**/v1/process",
            lambda route: route.fulfill(
                status=429,
                headers={"Retry-After": "17", "Content-Type": "application/json"},
                body=json.dumps({"detail": detail, "status_code": 429}),
            ),
        )
        page.select_option("#language", "en")
        page.get_by_test_id("upload-submit").click()
        wait_until(page, "document.querySelector('#upload-message').textContent.startsWith('429: ')")
        assert message.inner_text() == f"429: {detail} (try again in 17 s)"

        # A real 413: an archive that unpacks to far more than it weighs is refused as a zip bomb.
        page.locator("#file-list button").click()
        page.get_by_test_id("upload-file").set_input_files(
            {"name": "meetings.zip", "mimeType": "application/zip", "buffer": zip_bomb()}
        )
        page.get_by_test_id("upload-submit").click()
        wait_until(page, "document.querySelector('#upload-message').textContent.startsWith('413: ')")
        assert "MAIE_BATCH_MAX_RATIO" in message.inner_text()
        # Each refused request is logged by the browser itself; nothing else went wrong.
        assert all("Failed to load resource" in e for e in watched.errors), watched.errors
        assert len(watched.errors) == 5
        assert watched.dialogs == []


class TestLiveStatus:
    def test_without_the_event_stream_the_page_polls(self, stack, watched):
        api = stack[0]
        page = watched.page
        watched.sign_in()
        page.route("**/events", lambda route: route.abort())
        accepted = api.submit(shared_audio("jfk_16k.wav"), asr_backend="pocketsphinx")
        task_id = accepted.json()["task_id"]
        page.goto(f"/tasks/{task_id}")
        watched.wait_complete()
        assert page.get_attribute("#transport", "data-transport") == "polling"
        status = httpx.get(f"{api.url}/v1/status/{task_id}", headers=HEADERS_A).json()
        assert page.get_by_test_id("segment").count() == len(
            [s for s in status["results"]["segments"] if s["text"].strip()]
        )
        # Cut streams show up as failed loads in the console; nothing else may.
        assert all("net::ERR_FAILED" in e or "Failed to load resource" in e for e in watched.errors), (
            watched.errors
        )


class TestResultVersions:
    def test_summarize_again_and_switch_versions(self, stack, watched, shots):
        api = stack[0]
        accepted = api.submit(
            shared_audio("jfk_16k.wav"),
            asr_backend="pocketsphinx",
            features="raw_transcript,summary",
            template_id="meeting_notes_v1",
        )
        task_id = accepted.json()["task_id"]
        page = watched.page
        watched.sign_in()
        page.goto(f"/tasks/{task_id}")
        watched.wait_complete()
        fields = "#summary [data-field]"
        page.locator(fields).first.wait_for()
        assert "decisions" in [f.get_attribute("data-field") for f in page.locator(fields).all()]
        assert not page.locator("#version-row").is_visible()

        page.select_option("#resummary-template", "interview_notes_v1")
        page.locator("#resummary-form button[type=submit]").click()
        page.locator("#resummary-message", has_text="Version 2 has the new summary").wait_for(
            timeout=TASK_TIMEOUT_S * 1000
        )
        shown = [f.get_attribute("data-field") for f in page.locator(fields).all()]
        assert "key_points" in shown
        assert "decisions" not in shown
        assert page.locator("#version-row").is_visible()
        assert page.input_value("#version") == "2"
        page.screenshot(path=shots / "versions.png")

        # Version 1 is still there, with its own notes; the transcript is the same in both.
        lines = page.get_by_test_id("segment").all_inner_texts()
        page.select_option("#version", "1")
        page.locator("#summary [data-field=decisions]").wait_for()
        assert page.get_by_test_id("segment").all_inner_texts() == lines
        with page.expect_download() as download:
            page.get_by_test_id("download-json").click()
        assert json.loads(Path(download.value.path()).read_text())
        assert watched.errors == []
        assert watched.dialogs == []


class TestWithoutKeptAudio:
    def test_the_page_says_why_there_is_no_player(self, api, worker, browser):
        """On the shared services, which delete recordings once processed (no MAIE_KEEP_AUDIO)."""
        accepted = api.submit(shared_audio("jfk_16k.wav"), asr_backend="pocketsphinx")
        task_id = accepted.json()["task_id"]
        watched = Watched(browser, api.url)
        try:
            page = watched.page
            watched.sign_in()
            page.goto(f"/tasks/{task_id}")
            watched.wait_complete()
            note = page.locator("#audio-note")
            note.wait_for()
            assert "MAIE_KEEP_AUDIO=true" in note.inner_text()
            assert not page.get_by_test_id("audio").is_visible()
            # The lines still read and highlight; nothing plays.
            page.get_by_test_id("segment").first.click()
            assert "playing" in page.get_by_test_id("segment").first.get_attribute("class")
            assert all("Failed to load resource" in e for e in watched.errors), watched.errors
        finally:
            watched.close()


def zip_bomb():
    """A zip whose one member (4 MiB of zeros) compresses about a thousandfold."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("silence.wav", bytes(4 * 1024 * 1024))
    return buffer.getvalue()
