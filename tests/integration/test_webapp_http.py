"""The web app's pages and the API it adds (GET /v1/me, a task's audio), over HTTP to real processes.

Audio needs ``MAIE_KEEP_AUDIO=true``: those tests run on the web app's stack, which keeps recordings
and is shared with the browser tests (tests/fixtures/webapp.py); the shared services (which delete
them) show the 404 that says so.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fixtures.paths import shared_audio
from tests.fixtures.services import HEADERS_A, HEADERS_B
from tests.fixtures.webapp import WEBAPP_GROUP

pytestmark = pytest.mark.xdist_group(WEBAPP_GROUP)
#: A task id nobody has (the page shell does not look it up).
SOME_TASK = "0f6b2a52-5d1e-4c47-9a3e-2f8f1c1d9e10"


@pytest.fixture(scope="module")
def kept(webapp_stack):
    """The web app's API (MAIE_KEEP_AUDIO=true, tests/fixtures/webapp.py) and its data folder."""
    api = webapp_stack[0]
    return api, Path(api.env["MAIE_DATA_DIR"])


@pytest.fixture(scope="module")
def done(kept):
    """A finished task of tenant A on the private stack, its upload, and its folder."""
    api, data_dir = kept
    clip = shared_audio("jfk_16k.wav")
    accepted = api.submit(clip)
    assert accepted.status_code == 202, accepted.text
    task_id = accepted.json()["task_id"]
    assert api.wait(task_id)["status"] == "COMPLETE"
    return task_id, clip, data_dir / "audio" / task_id


class TestMe:
    def test_the_key_names_its_tenant(self, api):
        assert api.client.get("/v1/me", headers=HEADERS_A).json() == {"tenant": "tenant-a"}
        assert api.client.get("/v1/me", headers=HEADERS_B).json() == {"tenant": "tenant-b"}
        refused = api.client.get("/v1/me", headers={"X-API-Key": "nope"})
        assert refused.status_code == 401
        assert refused.json()["detail"] == "invalid API key"


class TestAudio:
    def test_the_status_names_the_file(self, kept, done):
        api, _ = kept
        task_id, clip, _ = done
        assert api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).json()["filename"] == clip.name

    def test_the_whole_file_and_byte_ranges(self, kept, done):
        api, _ = kept
        task_id, _, folder = done
        wav = (folder / "preprocessed.wav").read_bytes()
        url = f"/v1/tasks/{task_id}/audio"
        whole = api.client.get(url, headers=HEADERS_A)
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "audio/wav"
        assert whole.headers["accept-ranges"] == "bytes"
        assert int(whole.headers["content-length"]) == len(wav)
        assert whole.content == wav
        first = api.client.get(url, headers={**HEADERS_A, "Range": "bytes=0-99"})
        assert first.status_code == 206
        assert first.headers["content-range"] == f"bytes 0-99/{len(wav)}"
        assert first.content == wav[:100]
        tail = api.client.get(url, headers={**HEADERS_A, "Range": "bytes=-10"})
        assert (tail.status_code, tail.content) == (206, wav[-10:])
        beyond = api.client.get(url, headers={**HEADERS_A, "Range": f"bytes={len(wav)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(wav)}"
        same = api.client.get(
            url, headers={**HEADERS_A, "Range": "bytes=5-9", "If-Range": whole.headers["etag"]}
        )
        assert (same.status_code, same.content) == (206, wav[5:10])
        stale = api.client.get(url, headers={**HEADERS_A, "Range": "bytes=5-9", "If-Range": '"other"'})
        assert (stale.status_code, stale.content) == (200, wav)

    def test_the_original_recording_comes_back_as_uploaded(self, kept, done):
        api, _ = kept
        task_id, clip, _ = done
        original = api.client.get(
            f"/v1/tasks/{task_id}/audio", params={"source": "original"}, headers=HEADERS_A
        )
        assert original.status_code == 200
        assert original.content == clip.read_bytes()

    def test_another_tenant_gets_404(self, kept, done):
        api, _ = kept
        task_id, _, _ = done
        assert api.client.get(f"/v1/tasks/{task_id}/audio", headers=HEADERS_B).status_code == 404
        assert api.client.post(f"/v1/tasks/{task_id}/audio/link", headers=HEADERS_B).status_code == 404

    def test_a_signed_link_plays_without_the_key(self, kept, done):
        api, _ = kept
        task_id, _, folder = done
        wav = (folder / "preprocessed.wav").read_bytes()
        link = api.client.post(f"/v1/tasks/{task_id}/audio/link", headers=HEADERS_A)
        assert link.status_code == 200, link.text
        url = link.json()["url"]
        assert "key-tenant" not in url
        plain = httpx.Client(base_url=api.url, timeout=30)  # no X-API-Key at all
        assert plain.get(url).content == wav
        ranged = plain.get(url, headers={"Range": "bytes=44-1043"})
        assert (ranged.status_code, ranged.content) == (206, wav[44:1044])
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        forged = {**query, "signature": "0" * 64}
        assert plain.get(parts.path, params=forged).status_code == 403
        later = {**query, "expires": str(int(query["expires"]) + 3600)}
        assert plain.get(parts.path, params=later).status_code == 403
        other = f"/media/tasks/{uuid.uuid4()}/audio"
        assert plain.get(other, params=query).status_code == 403
        assert plain.get("/media/tasks/not-a-task/audio", params=query).status_code == 403
        plain.close()

    def test_without_kept_audio_it_says_how_to_keep_it(self, api, worker):
        accepted = api.submit(shared_audio("jfk_16k.wav"))
        task_id = accepted.json()["task_id"]
        assert api.wait(task_id)["status"] == "COMPLETE"
        for answer in (
            api.client.get(f"/v1/tasks/{task_id}/audio", headers=HEADERS_A),
            api.client.post(f"/v1/tasks/{task_id}/audio/link", headers=HEADERS_A),
        ):
            assert answer.status_code == 404
            assert "MAIE_KEEP_AUDIO=true" in answer.json()["detail"]


class TestPages:
    # Fixed ids only: every xdist worker must collect the same test names.
    @pytest.mark.parametrize("path", ["/", "/sign-in", "/upload", f"/tasks/{SOME_TASK}"])
    def test_pages_are_html_under_a_strict_policy(self, api, path):
        page = api.client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "'unsafe-inline'" not in policy
        assert "require-trusted-types-for 'script'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        # Every script is a file of this server; none is inline.
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.DOTALL)
        assert scripts
        assert all('src="/static/js/' in attrs and not body.strip() for attrs, body in scripts)
        features = json.loads(re.search(r'data-features="([^"]*)"', page.text).group(1).replace("&#34;", '"'))
        assert features["audio"] is True

    def test_the_task_page_carries_its_id_and_a_bad_id_is_404(self, api):
        task_id = str(uuid.uuid4())
        assert f'data-task-id="{task_id}"' in api.client.get(f"/tasks/{task_id}").text
        missing = api.client.get("/tasks/%3Cimg%20src%3Dx%3E")
        assert missing.status_code == 404
        assert "<img src=x>" not in missing.text

    def test_the_key_field_is_never_sent_with_a_form(self, api):
        html = api.client.get("/sign-in").text
        field = re.search(r"<input[^>]*data-testid=\"api-key\"[^>]*>", html).group(0)
        assert "name=" not in field
        assert 'type="password"' in field

    def test_static_files_and_nothing_else(self, api):
        script = api.client.get("/static/js/api.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert script.headers["x-content-type-options"] == "nosniff"
        assert api.client.get("/static/../../pyproject.toml").status_code == 404
        assert api.client.get("/static/js/nope.js").status_code == 404
