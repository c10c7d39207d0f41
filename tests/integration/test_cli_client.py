"""`maie submit/status/result/transcribe` and the Python client, against the real API and worker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import zipfile
from typing import TYPE_CHECKING

import httpx
import msgspec
import pysubs2
import pytest

from maie.client import AsyncMaieClient, MaieClient
from maie.errors import NotFoundError, UnsupportedMediaError
from maie.schemas import ResultVersion, TaskStatus
from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import fresh_database
from tests.fixtures.services import HEADERS_A, KEY_A
from tests.fixtures.timecodes import ms

if TYPE_CHECKING:
    from pathlib import Path

#: Short clips for the folder run: (path in ../shared/audio, where it goes in the folder).
CLIPS = [
    ("jfk_16k.wav", "jfk_16k.wav"),
    ("lhotse/LJ002-0020.wav", "ljspeech/LJ002-0020.wav"),
    ("lhotse/common_voice_en_651325.mp3", "cv/common_voice_en_651325.mp3"),
]


def _maie(env, *args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "maie", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _task_count(api):
    return len(api.client.get("/v1/tasks", headers=HEADERS_A, params={"limit": 200}).json()["tasks"])


@pytest.fixture
def folder(tmp_path) -> Path:
    """A folder of real clips (links to ../shared/audio), a zip of one more, and a text file."""
    root = tmp_path / "recordings"
    for source, target in CLIPS:
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        (root / target).symlink_to(shared_audio(source))
    with zipfile.ZipFile(root / "more.zip", "w") as archive:
        archive.write(shared_audio("lhotse/LJ002-0035.wav"), "day1/LJ002-0035.wav")
    (root / "README.txt").write_text("not a recording")
    return root


class TestSubmit:
    """A folder in, results out; a second run submits nothing new."""

    @pytest.mark.slow
    def test_folder_twice(self, api, worker, service_env, folder, tmp_path):
        out = tmp_path / "out"
        args = ["submit", str(folder), "--features", "raw_transcript", "--out", str(out)]
        args += ["--url", api.url, "--api-key", KEY_A, "--concurrency", "2"]
        before = _task_count(api)

        first = _maie(service_env, *args)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "4 submitted, 0 already submitted, 4 complete, 4 written, 0 failed" in first.stdout
        assert _task_count(api) == before + 4

        for stem in ("jfk_16k", "ljspeech/LJ002-0020", "cv/common_voice_en_651325", "more/day1/LJ002-0035"):
            result = msgspec.json.decode((out / f"{stem}.json").read_bytes(), type=ResultVersion)
            assert result.version == 1
            subs = pysubs2.SSAFile.from_string((out / f"{stem}.srt").read_text(), format_="srt")
            cues = [s for s in result.results.segments or [] if s.text.strip()]
            assert [(e.start, e.end) for e in subs] == [(ms(s.start), ms(s.end)) for s in cues]
            assert (out / f"{stem}.vtt").read_text().startswith("WEBVTT")
            assert (out / f"{stem}.txt").is_file()
        assert not (out / "README.json").exists(), "a folder walk takes recordings and archives only"

        second = _maie(service_env, *args)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "0 submitted, 4 already submitted" in second.stdout
        assert _task_count(api) == before + 4, "the second run submitted nothing"

    def test_status_and_result(self, api, worker, service_env):
        task_id = api.submit(shared_audio("jfk_16k.wav")).json()["task_id"]
        api.wait(task_id)
        common = ["--url", api.url, "--api-key", KEY_A]
        status = _maie(service_env, "status", task_id, *common)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["status"] == "COMPLETE"
        srt = _maie(service_env, "result", task_id, "--format", "srt", *common)
        assert srt.returncode == 0, srt.stderr
        assert len(pysubs2.SSAFile.from_string(srt.stdout, format_="srt")) >= 1
        whole = _maie(service_env, "result", task_id, "--format", "json", *common)
        assert msgspec.json.decode(whole.stdout, type=ResultVersion).version == 1
        missing = _maie(service_env, "status", "5c0e6a5e-0000-4000-8000-000000000000", *common)
        assert missing.returncode == 1
        assert "not found" in missing.stderr


class TestTranscribe:
    """`maie transcribe` runs the pipeline in-process: no Redis, no API, no worker."""

    def test_offline_vtt(self, service_env, tmp_path):
        env = {k: v for k, v in service_env.items() if k != "MAIE_REDIS_URL"}
        out = tmp_path / "jfk.vtt"
        done = _maie(env, "transcribe", str(shared_audio("jfk.flac")), "--format", "vtt", "-o", str(out))
        assert done.returncode == 0, done.stderr
        parsed = pysubs2.SSAFile.from_string(out.read_text(), format_="vtt")
        assert parsed.events
        assert all(0 <= e.start <= e.end <= 11_100 for e in parsed)

    def test_offline_refuses_non_audio(self, service_env, tmp_path):
        text = tmp_path / "notes.wav"
        text.write_text("not audio")
        done = _maie(service_env, "transcribe", str(text))
        assert done.returncode == 1
        assert "not audio" in done.stderr


class TestClient:
    """The Python client, sync and async, typed with the contract Structs."""

    def test_sync_round_trip(self, api, worker):
        with MaieClient(api.url, KEY_A) as maie:
            accepted = maie.submit(
                shared_audio("jfk_16k.wav"), features=["raw_transcript"], word_timestamps=True
            )
            status = maie.wait(accepted.task_id, timeout=120)
            assert status.status == TaskStatus.COMPLETE
            assert maie.result(accepted.task_id).results == status.results
            assert [v.version for v in maie.results(accepted.task_id).versions] == [1]
            assert maie.transcript(accepted.task_id, "vtt").startswith("WEBVTT")
            assert accepted.task_id in [t.task_id for t in maie.tasks(limit=200).tasks]
            with pytest.raises(NotFoundError):
                maie.status("5c0e6a5e-0000-4000-8000-000000000000")

    async def test_async_events_and_errors(self, api, worker, tmp_path):
        async with AsyncMaieClient(api.url, KEY_A) as maie:
            accepted = await maie.submit(shared_audio("jfk_16k.wav"), features=["raw_transcript"])
            seen = [s.status async for s in maie.events(accepted.task_id)]
            assert seen[-1] == TaskStatus.COMPLETE
            text = tmp_path / "notes.wav"
            text.write_text("not audio")
            with pytest.raises(UnsupportedMediaError, match="HTTP 415"):
                await maie.submit(text, features=["raw_transcript"])


class _Counting(httpx.HTTPTransport):
    """A real HTTP transport that also counts the status codes it got (not a double)."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.codes.append(response.status_code)
        return response


@pytest.mark.slow
def test_backs_off_on_429_until_the_queue_drains(service_env, start_process, tmp_path):
    """With the queue full the client waits Retry-After and tries again; once a worker drains
    the queue the same submission is accepted."""
    from maie.up.redis import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    env = {
        **service_env,
        "MAIE_REDIS_URL": server.url,
        "MAIE_DATABASE_URL": fresh_database(service_env["MAIE_DATABASE_URL"]),
        "MAIE_DATA_DIR": str(tmp_path / "data"),
        "MAIE_MAX_QUEUE_DEPTH": "1",
        "MAIE_BUSY_RETRY_AFTER_S": "1",
    }
    api = worker = None
    try:
        api = start_process("api", env)
        assert api.submit(shared_audio("jfk_16k.wav")).status_code == 202  # fills the queue
        transport = _Counting()
        accepted = []

        def submit():
            with MaieClient(api.url, KEY_A, max_attempts=60, transport=transport) as maie:
                accepted.append(maie.submit(shared_audio("jfk_16k.wav"), features=["raw_transcript"]))

        thread = threading.Thread(target=submit)
        thread.start()
        deadline = time.monotonic() + 30
        while 429 not in transport.codes:
            assert time.monotonic() < deadline, "the second submission was never refused"
            time.sleep(0.1)
        worker = start_process("worker", env)
        thread.join(timeout=120)
        assert accepted, transport.codes
        assert transport.codes[-1] == 202
        assert transport.codes.count(429) >= 1
        api.wait(accepted[0].task_id)
    finally:
        for process in (worker, api):
            if process is not None:
                process.stop()
        server.stop()
