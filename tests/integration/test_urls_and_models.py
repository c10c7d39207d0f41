"""Recordings by URL and model variants, through a real API and worker against a real local web server.

The module's services have a private Redis (only their worker sees their messages) and allow
private addresses (``MAIE_FETCH_ALLOW_PRIVATE=true``), since the web server is on loopback; the
session's shared API, which does not, stands for a default deployment. Their Whisper models are the
tiny test model under two names (``MAIE_WHISPER_MODELS``).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from maie.client import AsyncMaieClient, MaieClient
from maie.errors import UnprocessableError
from maie.schemas import TaskStatus
from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import fresh_database
from tests.fixtures.services import HEADERS_A, KEY_A

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from tests.fixtures.services import Api

#: The variants of the module's services: one model, two names.
VARIANTS = ("tiny-a", "tiny-b")


@pytest.fixture(scope="module")
def url_env(service_env, tiny_whisper_dir, tmp_path_factory) -> Iterator[dict[str, str]]:
    """A private Redis and data folder; loopback sources allowed; small limits so failures come fast."""
    from maie.up.redis import EmbeddedRedis

    folder = tmp_path_factory.mktemp("urls")
    server = EmbeddedRedis(folder / "redis")
    server.start()
    env = {k: v for k, v in service_env.items() if k != "MAIE_WHISPER_MODEL"}
    yield {
        **env,
        "MAIE_REDIS_URL": server.url,
        "MAIE_DATABASE_URL": fresh_database(service_env["MAIE_DATABASE_URL"]),
        "MAIE_DATA_DIR": str(folder / "data"),
        "MAIE_FETCH_ALLOW_PRIVATE": "true",
        "MAIE_FETCH_STALL_TIMEOUT_S": "1",
        "MAIE_MAX_FILE_SIZE_MB": "1",  # the 11 s clip is 0.34 MiB; the server's big answers are 1.3 MiB
        "MAIE_MAX_RETRIES": "1",
        "MAIE_RETRY_MIN_BACKOFF_MS": "100",
        "MAIE_RETRY_MAX_BACKOFF_MS": "300",
        "MAIE_WHISPER_MODELS": ",".join(f"{name}={tiny_whisper_dir}" for name in VARIANTS),
    }
    server.stop()


@pytest.fixture(scope="module")
def url_api(url_env, start_process) -> Iterator[Api]:
    """API and worker on the module's Redis, stopped before it is."""
    api = start_process("api", url_env)
    worker = start_process("worker", url_env)
    yield api
    worker.stop()
    api.stop()


def submit_url(api: Api, url: str, headers: dict[str, str] = HEADERS_A, **fields: str) -> httpx.Response:
    """POST /v1/process with ``url`` (multipart, as ``curl -F url=...`` sends it)."""
    parts = {"url": (None, url), "features": (None, "raw_transcript")}
    parts |= {name: (None, value) for name, value in fields.items()}
    return api.client.post("/v1/process", headers=headers, files=parts)


def fetched(api: Api, url: str) -> dict[str, Any]:
    """Submit ``url``, wait for the task to finish and return its status."""
    accepted = submit_url(api, url)
    assert accepted.status_code == 202, accepted.text
    return api.wait(accepted.json()["task_id"])


def stage(status: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [s for s in status["stages"] if s["name"] == name]
    return found


def assert_transcribed(status: dict[str, Any]) -> None:
    """The task ran fetch → preprocess → transcribe and measured the 11 s clip."""
    assert status["status"] == "COMPLETE", status
    assert [s["name"] for s in status["stages"]] == ["fetch", "preprocess", "transcribe"]
    assert all(s["status"] == "done" for s in status["stages"])
    assert status["metrics"]["input_duration_seconds"] == pytest.approx(11.0, abs=0.15)
    assert status["results"]["raw_transcript"].strip()


def assert_failed(status: dict[str, Any], error_code: str, attempts: int = 1) -> None:
    assert status["status"] == "FAILED", status
    assert (status["error_code"], status["failed_stage"]) == (error_code, "fetch")
    assert stage(status, "fetch")["attempts"] == attempts
    assert stage(status, "preprocess").get("status", "pending") == "pending", "nothing ran after the fetch"


class TestFetched:
    """A URL is fetched by the worker and then transcribed exactly like an upload."""

    def test_a_direct_link_is_transcribed_and_recorded_without_credentials(self, url_api, media_server):
        url = media_server.url("/clip.wav?token=s3cr3t&id=7").replace("://", "://user:pa55@", 1)
        status = fetched(url_api, url)

        assert_transcribed(status)
        worked = sum(stage(status, name)["duration_s"] for name in ("preprocess", "transcribe"))
        assert status["metrics"]["processing_time_seconds"] == pytest.approx(worked, abs=0.01), (
            "the download is not processing: it stays out of the real-time factor"
        )
        shown = media_server.url("/clip.wav?token=REDACTED&id=7")
        assert status["source_url"] == shown
        assert status["model"] == VARIANTS[0], "no model named: the first of MAIE_WHISPER_MODELS"
        assert status["versions"]["asr_backend"]["model_variant"] == VARIANTS[0]
        listed = url_api.client.get("/v1/tasks", headers=HEADERS_A).json()["tasks"]
        assert {t["task_id"]: t.get("source_url") for t in listed}[status["task_id"]] == shown
        assert "s3cr3t" not in url_api.client.get(f"/v1/status/{status['task_id']}", headers=HEADERS_A).text
        (request,) = [seen for seen in media_server.requests if seen.path.startswith("/clip.wav")]
        assert request.headers.get("Authorization", "").startswith("Basic "), "the credentials were used"

    def test_a_redirect_chain_is_followed(self, url_api, media_server):
        status = fetched(url_api, media_server.url("/redirect/3"))

        assert_transcribed(status)
        assert media_server.paths() == [
            "/redirect/3",
            "/redirect/2",
            "/redirect/1",
            "/redirect/0",
            "/clip.wav",
        ]

    def test_a_page_with_an_audio_element_is_read_by_yt_dlp(self, url_api, media_server):
        status = fetched(url_api, media_server.url("/page.html"))

        assert_transcribed(status)
        assert media_server.paths()[0] == "/page.html"
        assert media_server.paths()[-1] == "/clip.wav", "the <audio> element's source was downloaded"

    def test_a_batch_mixes_files_and_urls(self, url_api, media_server):
        """Each usable file and URL is a task; a URL refused at submit is skipped with its reason."""
        refused = "http://169.254.169.254/latest/meta-data/clip.wav"
        urls = f"{media_server.url('/clip.wav')}\n{refused}\n"  # one field, one URL per line
        with shared_audio("jfk_16k.wav").open("rb") as clip:
            answer = url_api.client.post(
                "/v1/batches",
                headers=HEADERS_A,
                files=[("file", ("jfk.wav", clip)), ("url", (None, urls))],
                data={"features": "raw_transcript", "model": VARIANTS[1]},
            )
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert len(body["task_ids"]) == 2
        (skipped,) = body["skipped"]
        assert skipped["name"] == refused
        assert "cloud metadata address" in skipped["reason"]
        upload, by_url = (url_api.wait(t) for t in body["task_ids"])
        assert upload["status"] == by_url["status"] == "COMPLETE", (upload, by_url)
        assert [s["name"] for s in upload["stages"]] == ["preprocess", "transcribe"]
        assert_transcribed(by_url)
        assert by_url["source_url"] == media_server.url("/clip.wav")
        assert by_url["versions"]["asr_backend"]["model_variant"] == VARIANTS[1]
        batch = url_api.client.get(f"/v1/batches/{body['batch_id']}", headers=HEADERS_A).json()
        assert [t.get("source_url") for t in batch["tasks"]] == [None, media_server.url("/clip.wav")]


class TestFetchFailures:
    """A URL that cannot be fetched fails its task at the fetch stage with a clear error_code."""

    def test_a_redirect_to_the_metadata_service_is_refused(self, url_api, media_server):
        status = fetched(url_api, media_server.url("/to-metadata"))

        assert_failed(status, "fetch_refused_address")
        assert "cloud metadata address" in status["error"]
        assert "MAIE never calls those" in status["error"]

    @pytest.mark.parametrize("path", ["/big.wav", "/big-chunked.wav"])
    def test_a_body_over_the_size_limit_is_refused(self, url_api, media_server, path):
        """Refused on Content-Length before the body, or cut while counting it; nothing is kept."""
        status = fetched(url_api, media_server.url(path))

        assert_failed(status, "fetch_too_large")
        assert "MiB" in status["error"]

    def test_a_stalling_server_is_cut_off_and_retried(self, url_api, media_server):
        """A stall is worth a retry (MAIE_MAX_RETRIES=1 here); the task fails when retries run out."""
        status = fetched(url_api, media_server.url("/stall.wav"))

        assert_failed(status, "fetch_timeout", attempts=2)
        assert media_server.paths() == ["/stall.wav", "/stall.wav"]

    def test_a_404_fails_at_once(self, url_api, media_server):
        status = fetched(url_api, media_server.url("/missing"))

        assert_failed(status, "fetch_http_error")
        assert "404" in status["error"]

    def test_a_failed_fetch_leaves_no_file(self, url_api, url_env, media_server):
        status = fetched(url_api, media_server.url("/big-chunked.wav"))

        assert status["status"] == "FAILED"
        folder = Path(url_env["MAIE_DATA_DIR"], "audio", status["task_id"])
        deadline = time.monotonic() + 10  # the folder goes just after the task is marked failed
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not folder.exists()


class TestRefusedAtSubmit:
    """What the submit-time checks refuse never becomes a task."""

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
    def test_loopback_is_refused_without_the_setting(self, api, media_server, host):
        """Without MAIE_FETCH_ALLOW_PRIVATE: 422 names the host and the rule, never the address."""
        answer = submit_url(api, media_server.url("/clip.wav", host=host))

        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert f"url host {host!r} resolves to a loopback address" in body["detail"]
        assert "MAIE_FETCH_ALLOW_PRIVATE=true" in body["detail"]
        assert body["extra"] == {"host": host, "rule": "loopback"}
        if host != "127.0.0.1":
            assert "127.0.0.1" not in answer.text, "the check must not tell what a name resolves to"
        assert media_server.requests == [], "nothing was fetched"

    def test_the_same_url_is_accepted_with_the_setting(self, url_api, media_server):
        answer = submit_url(url_api, media_server.url("/clip.wav", host="localhost"))

        assert answer.status_code == 202, answer.text
        url_api.wait(answer.json()["task_id"])

    @pytest.mark.parametrize(
        ("url", "words"),
        [
            ("ftp://example.com/a.wav", "must be an http:// or https:// URL"),
            ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
            ("http://169.254.10.1/clip.wav", "link-local address"),
            ("http://[fd00:ec2::254]/", "MAIE never calls those"),
            ("not a url", "must be an http:// or https:// URL"),
        ],
    )
    def test_urls_that_may_never_be_fetched(self, url_api, url, words):
        answer = submit_url(url_api, url)

        assert answer.status_code == 422, answer.text
        assert words in answer.json()["detail"]

    def test_file_and_url_are_exclusive(self, api, media_server):
        clip = shared_audio("jfk_16k.wav")
        with clip.open("rb") as fh:
            both = api.client.post(
                "/v1/process",
                headers=HEADERS_A,
                files={"file": ("jfk.wav", fh), "url": (None, media_server.url("/clip.wav"))},
            )
        neither = api.client.post(
            "/v1/process", headers=HEADERS_A, files={"features": (None, "raw_transcript")}
        )

        assert both.status_code == neither.status_code == 422
        assert "both was sent" in both.json()["detail"]
        assert "neither was sent" in neither.json()["detail"]


class TestModelVariants:
    """The tiny model under two names: each request runs and records the variant it named."""

    @pytest.mark.parametrize("name", VARIANTS)
    def test_each_variant_completes_and_is_recorded(self, url_api, name):
        accepted = url_api.submit(shared_audio("jfk_16k.wav"), model=name)
        assert accepted.status_code == 202, accepted.text

        status = url_api.wait(accepted.json()["task_id"])

        assert status["status"] == "COMPLETE", status
        assert status["model"] == name
        assert status["versions"]["asr_backend"]["model_variant"] == name

    def test_an_unknown_name_is_refused_with_the_known_ones(self, url_api):
        answer = url_api.submit(shared_audio("jfk_16k.wav"), model="large-v3")

        assert answer.status_code == 422, answer.text
        assert "known models: tiny-a, tiny-b" in answer.json()["detail"]
        assert answer.json()["extra"] == {"known_models": list(VARIANTS)}

    def test_models_lists_both_loaded_after_they_ran(self, url_api, tiny_whisper_dir):
        """Both variants are listed with their size; once both ran, the worker reports both loaded."""
        for name in VARIANTS:
            accepted = url_api.submit(shared_audio("jfk_16k.wav"), model=name)
            assert url_api.wait(accepted.json()["task_id"])["status"] == "COMPLETE"
        weights = sum(p.stat().st_size for p in tiny_whisper_dir.rglob("*") if p.is_file())
        deadline = time.monotonic() + 30
        while True:
            models = url_api.client.get("/v1/models", headers=HEADERS_A).json()["models"]
            (whisper,) = [m for m in models if m["backend_id"] == "whisper"]
            variants = whisper["variants"]
            if all(v.get("loaded") for v in variants) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [(v["name"], v.get("default", False)) for v in variants] == [
            (VARIANTS[0], True),
            (VARIANTS[1], False),
        ]
        for variant in variants:
            assert variant["available"], variant
            assert variant["size_bytes"] == weights
            assert variant["model"] == tiny_whisper_dir.name, "a name: the server's folders stay private"
            assert (variant.get("loaded"), variant.get("loaded_workers")) == (True, 1), variant
        assert whisper["default_variant"] == VARIANTS[0]


class TestClientAndCommandLine:
    """``maie.client`` and ``maie submit`` send URLs and model names as the API takes them."""

    def test_the_clients_submit_a_url_with_a_model(self, url_api, media_server):
        with MaieClient(url_api.url, KEY_A) as maie:
            accepted = maie.submit_url(
                media_server.url("/clip.wav"), features=["raw_transcript"], model="tiny-b"
            )
            status = maie.wait(accepted.task_id, timeout=120)
            assert status.status == TaskStatus.COMPLETE, status
            assert status.source_url == media_server.url("/clip.wav")
            assert status.versions is not None
            assert status.versions.asr_backend.model_variant == "tiny-b"
            with pytest.raises(UnprocessableError, match="known models"):
                maie.submit(shared_audio("jfk_16k.wav"), features=["raw_transcript"], model="nope")

        async def batch() -> list[str]:
            async with AsyncMaieClient(url_api.url, KEY_A) as maie:
                accepted = await maie.submit_batch(
                    [],
                    urls=[media_server.url("/clip.wav"), media_server.url("/missing")],
                    features=["raw_transcript"],
                )
                return [(await maie.wait(t)).status.value for t in accepted.task_ids]

        assert asyncio.run(batch()) == ["COMPLETE", "FAILED"]

    def test_maie_submit_sends_an_argument_that_is_a_url_as_a_url(
        self, url_api, url_env, media_server, tmp_path
    ):
        out = tmp_path / "out"
        args = [
            "submit",
            media_server.url("/redirect/1"),
            "--model",
            "tiny-b",
            "--features",
            "raw_transcript",
        ]
        args += ["--out", str(out), "--url", url_api.url, "--api-key", KEY_A]
        done = subprocess.run(
            [sys.executable, "-m", "maie", *args],
            env=url_env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 submitted, 0 already submitted, 1 complete, 1 written, 0 failed" in done.stdout
        written = out / "127.0.0.1" / "redirect" / "1.json"
        assert written.is_file(), sorted(str(p) for p in out.rglob("*"))
        assert '"model_variant":"tiny-b"' in written.read_text()
        missing = subprocess.run(
            [sys.executable, "-m", "maie", "submit", str(tmp_path / "nowhere.wav"), "--url", url_api.url],
            env=url_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert missing.returncode == 2
        assert "neither an existing file or folder nor an http(s):// URL" in missing.stderr
