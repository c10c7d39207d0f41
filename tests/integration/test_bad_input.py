"""Bad input gets its status code and leaves nothing behind: no folder, no record, no message."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.fixtures import bad_media
from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import query, task_ids
from tests.fixtures.services import HEADERS_A, HEADERS_B, KEY_A, KEY_B

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def leftovers(service_env) -> Iterator[None]:
    """Fail the test if the refused request left a folder or a task record behind."""
    audio = Path(service_env["MAIE_DATA_DIR"]) / "audio"
    folders = {p.name for p in audio.iterdir()} if audio.is_dir() else set()
    tasks = task_ids(service_env["MAIE_DATABASE_URL"])
    yield
    after_folders = {p.name for p in audio.iterdir()} if audio.is_dir() else set()
    assert not after_folders - folders, "a refused upload left a task folder"
    assert not task_ids(service_env["MAIE_DATABASE_URL"]) - tasks, "a refused upload left a task record"


@pytest.mark.usefixtures("leftovers")
class TestRefusedUploads:
    """Each hostile or broken upload gets its status code."""

    @pytest.mark.parametrize(
        ("make", "status"),
        [
            (bad_media.write_empty, 415),
            (bad_media.write_text, 415),
            (bad_media.write_truncated_wav_header, 415),
            (bad_media.write_png, 415),
            (bad_media.write_zip, 415),
            (bad_media.write_video_mp4, 415),
        ],
        ids=["empty", "text-as-wav", "truncated-wav-header", "png", "zip-as-mp3", "video-only"],
    )
    def test_not_audio(self, api, tmp_path, make, status):
        response = api.submit(make(tmp_path))
        assert response.status_code == status, response.text
        body = response.json()
        assert body["status_code"] == status
        assert "decode" in body["detail"] or "audio" in body["detail"]

    def test_too_short(self, api, tmp_path):
        clip = bad_media.write_tone_wav(tmp_path, "short.wav", seconds=0.3)
        response = api.submit(clip)
        assert response.status_code == 422, response.text
        assert "MAIE_MIN_DURATION_S" in response.json()["detail"]

    def test_path_in_filename(self, api):
        with shared_audio("jfk_16k.wav").open("rb") as fh:
            response = api.client.post(
                "/v1/process",
                headers=HEADERS_A,
                files={"file": ("../../etc/passwd", fh)},
                data={"features": "raw_transcript"},
            )
        assert response.status_code == 400, response.text
        assert "unsafe filename" in response.json()["detail"]
        assert not Path("/etc/passwd").read_bytes().startswith(b"RIFF")

    def test_unknown_feature(self, api):
        response = api.submit(shared_audio("jfk_16k.wav"), features="raw_transcript,translation")
        assert response.status_code == 422
        assert "'translation'" in response.json()["detail"]

    def test_llm_features_without_backend(self, api):
        response = api.submit(shared_audio("jfk_16k.wav"), features="clean_transcript,summary")
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert "clean_transcript, summary need an LLM backend" in detail
        assert "MAIE_LLM_BACKEND=none" in detail

    def test_default_features_need_llm(self, api):
        with shared_audio("jfk_16k.wav").open("rb") as fh:
            response = api.client.post("/v1/process", headers=HEADERS_A, files={"file": ("a.wav", fh)})
        assert response.status_code == 422
        assert "MAIE_LLM_BACKEND" in response.json()["detail"]

    def test_unknown_backend(self, api):
        response = api.submit(shared_audio("jfk_16k.wav"), asr_backend="nope")
        assert response.status_code == 422
        assert "whisper" in response.json()["detail"]

    def test_bad_language(self, api):
        response = api.submit(shared_audio("jfk_16k.wav"), language="english!")
        assert response.status_code == 400

    def test_missing_file_part(self, api):
        """Neither ``file`` nor ``url``: 422 saying to send one of them."""
        response = api.client.post(
            "/v1/process",
            headers=HEADERS_A,
            files={"other": ("a.txt", b"x")},
            data={"features": "raw_transcript"},
        )
        assert response.status_code == 422
        assert "either as `file` (an upload) or as `url`" in response.json()["detail"]


class TestAuth:
    """Keys and tenants."""

    @pytest.mark.usefixtures("leftovers")
    def test_missing_key(self, api):
        response = api.submit(shared_audio("jfk_16k.wav"), headers={})
        assert response.status_code == 401
        assert api.client.get(f"/v1/status/{uuid.uuid4()}").status_code == 401

    @pytest.mark.usefixtures("leftovers")
    def test_wrong_key(self, api):
        response = api.submit(shared_audio("jfk_16k.wav"), headers={"X-API-Key": "nope"})
        assert response.status_code == 401
        assert response.json() == {"detail": "invalid API key", "status_code": 401}
        bearer = api.submit(shared_audio("jfk_16k.wav"), headers={"Authorization": "Bearer nope"})
        assert bearer.status_code == 401

    def test_a_bearer_key_is_an_api_key(self, api, worker):
        """``Authorization: Bearer <key>`` (what OpenAI's SDKs send) works wherever X-API-Key does."""
        bearer = {"Authorization": f"Bearer {KEY_A}"}
        response = api.submit(shared_audio("jfk_16k.wav"), headers=bearer)
        assert response.status_code == 202
        task_id = response.json()["task_id"]
        assert api.wait(task_id, headers=bearer)["status"] == "COMPLETE"
        listed = api.client.get("/v1/tasks", headers={"Authorization": f"bearer {KEY_A}"}).json()
        assert task_id in [t["task_id"] for t in listed["tasks"]]
        # The tenant is the key's, however it is presented.
        assert (
            api.client.get(f"/v1/status/{task_id}", headers={"Authorization": f"Bearer {KEY_B}"}).status_code
            == 404
        )

    def test_other_tenants_task_is_not_found(self, api, worker):
        task_id = api.submit(shared_audio("jfk_16k.wav")).json()["task_id"]
        assert api.client.get(f"/v1/status/{task_id}", headers=HEADERS_B).status_code == 404
        unknown = api.client.get(f"/v1/status/{uuid.uuid4()}", headers=HEADERS_B)
        assert unknown.status_code == 404
        assert api.client.get("/v1/status/not-a-uuid", headers=HEADERS_A).status_code == 404
        assert api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).status_code == 200
        api.wait(task_id)


@pytest.fixture(scope="module")
def small_api(service_env, start_process):
    """An API that takes uploads up to 0.1 MiB, stopped with the module."""
    api = start_process("api", {**service_env, "MAIE_MAX_FILE_SIZE_MB": "0.1"})
    yield api
    api.stop()


class TestSizeLimit:
    """Uploads over MAIE_MAX_FILE_SIZE_MB are refused with 413, announced or streamed."""

    def test_content_length_over_limit(self, small_api, service_env):
        clip = shared_audio("jfk_16k.wav")  # 352 kB > 0.1 MiB
        response = small_api.submit(clip)
        assert response.status_code == 413
        assert response.json()["status_code"] == 413

    def test_streamed_body_over_limit(self, small_api):
        """Without Content-Length (chunked), the limit holds while streaming."""
        boundary = "maieboundary"
        clip = shared_audio("jfk_16k.wav").read_bytes()

        def body():
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="features"\r\n\r\nraw_transcript\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
                "Content-Type: audio/wav\r\n\r\n"
            ).encode()
            for i in range(0, len(clip), 32 * 1024):
                yield clip[i : i + 32 * 1024]
            yield f"\r\n--{boundary}--\r\n".encode()

        response = small_api.client.post(
            "/v1/process",
            headers={**HEADERS_A, "Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=body(),
        )
        assert "content-length" not in {k.lower() for k in response.request.headers}
        assert response.status_code == 413

    def test_under_limit_accepted(self, small_api, worker):
        clip = shared_audio("lhotse/common_voice_en_651325.mp3")  # 19 kB
        response = small_api.submit(clip)
        assert response.status_code == 202, response.text
        assert small_api.wait(response.json()["task_id"])["status"] == "COMPLETE"


class TestBackPressure:
    """A full queue answers 429 with Retry-After; a Redis outage answers 503; nothing is half-written."""

    @pytest.fixture
    def isolated(self, service_env, private_database, tmp_path):
        """A private Redis, database and data folder, with no worker: submissions stay queued."""
        from maie.up.redis import EmbeddedRedis

        server = EmbeddedRedis(tmp_path / "redis")
        server.start()
        env = {
            **service_env,
            "MAIE_REDIS_URL": server.url,
            "MAIE_DATABASE_URL": private_database,
            "MAIE_DATA_DIR": str(tmp_path / "data"),
        }
        yield server, env
        server.stop()

    def test_queue_full(self, isolated, start_process):
        _, env = isolated
        api = start_process("api", {**env, "MAIE_MAX_QUEUE_DEPTH": "2"})
        clip = shared_audio("jfk_16k.wav")
        assert api.submit(clip).status_code == 202
        assert api.submit(clip).status_code == 202
        refused = api.submit(clip)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "MAIE_MAX_QUEUE_DEPTH" in refused.json()["detail"]
        assert len(list((Path(env["MAIE_DATA_DIR"]) / "audio").iterdir())) == 2
        assert api.client.get("/health").json()["queue_depth"] == 2
        api.stop()

    def test_concurrent_submissions_never_overshoot(self, isolated, start_process):
        """Twenty uploads at once against MAIE_MAX_QUEUE_DEPTH=5: exactly five are accepted.

        Each submission holds its queue slot from before its body is read until its task is
        stored; none is left held afterwards.
        """
        _, env = isolated
        api = start_process("api", {**env, "MAIE_MAX_QUEUE_DEPTH": "5"})
        clip = shared_audio("jfk_16k.wav")
        start = threading.Barrier(20)

        def submit(_: int) -> int:
            with httpx.Client(base_url=api.url, timeout=120) as client, clip.open("rb") as fh:
                start.wait()
                return client.post(
                    "/v1/process",
                    headers=HEADERS_A,
                    files={"file": (clip.name, fh)},
                    data={"features": "raw_transcript"},
                ).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            codes = sorted(pool.map(submit, range(20)))
        assert codes == [202] * 5 + [429] * 15, codes
        assert api.client.get("/health").json()["queue_depth"] == 5
        assert len(list((Path(env["MAIE_DATA_DIR"]) / "audio").iterdir())) == 5
        held = query(env["MAIE_DATABASE_URL"], "SELECT count(*) FROM admission_slots")
        assert held == [(0,)], "every slot was freed by its task or its refusal"
        api.stop()

    def test_refused_upload_frees_its_slot(self, isolated, start_process, tmp_path):
        """With room for one task, a refused upload does not keep the next one out."""
        _, env = isolated
        api = start_process("api", {**env, "MAIE_MAX_QUEUE_DEPTH": "1"})
        assert api.submit(bad_media.write_text(tmp_path)).status_code == 415
        assert api.submit(shared_audio("jfk_16k.wav"), features="no_such_feature").status_code == 422
        assert api.submit(shared_audio("jfk_16k.wav")).status_code == 202
        assert api.submit(shared_audio("jfk_16k.wav")).status_code == 429
        api.stop()

    def test_redis_down(self, isolated, start_process):
        server, env = isolated
        api = start_process("api", env)
        head = api.client.head("/ready")
        assert (head.status_code, head.content) == (200, b""), "HEAD answers like GET, with no body"
        server.stop()
        assert api.client.head("/ready").status_code == 503
        assert api.client.head("/health").status_code == 200, "health answers whatever it reports"
        response = api.submit(shared_audio("jfk_16k.wav"))
        assert response.status_code == 503
        assert "Retry-After" in response.headers
        address = server.url.split("//", 1)[1].split("/", 1)[0]  # host:port
        port = address.rsplit(":", 1)[1]
        answer = response
        detail = answer.json()["detail"]
        assert "task store cannot be reached" in detail, detail
        assert port not in detail, "the store's address is not shown to clients"
        assert answer.headers["X-Request-ID"] in detail, "the request id to quote to the operator"
        # Records live in PostgreSQL: reads go on while Redis (queues, live state) is away.
        unknown = api.client.get("/v1/status/00000000-0000-4000-8000-000000000000", headers=HEADERS_A)
        assert unknown.status_code == 404, unknown.text
        assert api.client.get("/v1/tasks", headers=HEADERS_A).status_code == 200
        deadline = time.monotonic() + 30
        while not any(
            port in line and answer.headers["X-Request-ID"] in line for line in api.log().splitlines()
        ):
            assert time.monotonic() < deadline, "the log keeps the address, with the request id"
            time.sleep(0.1)
        audio = Path(env["MAIE_DATA_DIR"]) / "audio"
        assert not audio.exists() or not any(audio.iterdir())
        assert api.client.get("/ready").status_code == 503
        health = api.client.get("/health").json()
        assert health["redis_connected"] is False
        assert health["status"] == "degraded"
        api.stop()
