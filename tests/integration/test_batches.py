"""Batches over HTTP with the real worker: archives and multi-part uploads, limits, status, export."""

from __future__ import annotations

import csv
import io
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from tests.fixtures import bad_media
from tests.fixtures.archives import tar_with, zip_many, zip_symlink, zip_with
from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import query, task_ids
from tests.fixtures.services import HEADERS_A, HEADERS_B


def _post_batch(api, parts, headers=HEADERS_A, **fields):
    """POST /v1/batches with ``parts`` [(filename, bytes)] as repeated ``file`` fields."""
    files = [("file", (name, data)) for name, data in parts]
    return api.client.post(
        "/v1/batches", headers=dict(headers), files=files, data={"features": "raw_transcript", **fields}
    )


def _wait_batch(api, batch_id, timeout=120.0):
    deadline = time.monotonic() + timeout
    while True:
        body = api.client.get(f"/v1/batches/{batch_id}", headers=HEADERS_A).json()
        if body["finished"]:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def _files_under(folder: Path) -> set[str]:
    return {str(Path(root, name).relative_to(folder)) for root, _, names in os.walk(folder) for name in names}


def _records(database_url: str) -> set[str]:
    return task_ids(database_url) | {b for (b,) in query(database_url, "SELECT batch_id FROM batches")}


@pytest.fixture
def untouched(service_env):
    """Fail the test if a refused batch left a file, a task record or a batch record behind."""
    data = Path(service_env["MAIE_DATA_DIR"])
    database = service_env["MAIE_DATABASE_URL"]
    files = _files_under(data)
    records = _records(database)
    yield
    assert _files_under(data) - files == set(), "a refused batch left files behind"
    assert _records(database) - records == set(), "a refused batch left records behind"


@pytest.fixture(scope="module")
def hostile_zip(tmp_path_factory) -> Path:
    """Nested folders, two recordings, a text file, an image, a `../` member and a symlink."""
    folder = tmp_path_factory.mktemp("zips")
    png = bad_media.write_png(folder, "photo.png").read_bytes()
    return zip_symlink(
        folder / "meetings.zip",
        "meetings/link.wav",
        "/etc/passwd",
        extra=[
            ("meetings/2024/jan/jfk.wav", shared_audio("jfk_16k.wav").read_bytes()),
            ("meetings/voice/cv.mp3", shared_audio("lhotse/common_voice_en_651325.mp3").read_bytes()),
            ("meetings/notes.txt", b"minutes of the meeting"),
            ("meetings/photo.png", png),
            ("../escape.wav", shared_audio("jfk_16k.wav").read_bytes()),
        ],
    )


class TestArchiveBatch:
    """One zip with nested folders and mixed members."""

    def test_accept_skip_complete_export(self, api, worker, hostile_zip, service_env):
        response = _post_batch(api, [("meetings.zip", hostile_zip.read_bytes())])
        assert response.status_code == 202, response.text
        body = response.json()
        assert response.headers["Location"] == body["status_url"] == f"/v1/batches/{body['batch_id']}"
        assert len(body["task_ids"]) == 2
        reasons = {s["name"]: s["reason"] for s in body["skipped"]}
        assert set(reasons) == {
            "meetings/link.wav",
            "meetings/notes.txt",
            "meetings/photo.png",
            "../escape.wav",
        }
        assert "symbolic link" in reasons["meetings/link.wav"]
        assert "not audio" in reasons["meetings/notes.txt"]
        assert "'..'" in reasons["../escape.wav"]
        data = Path(service_env["MAIE_DATA_DIR"])
        assert not (data.parent / "escape.wav").exists()
        assert not (data / "batches" / body["batch_id"]).exists(), "the batch folder is removed"

        status = _wait_batch(api, body["batch_id"])
        assert status["total"] == 2
        assert status["counts"] == {"COMPLETE": 2}
        assert sorted(t["filename"] for t in status["tasks"]) == [
            "meetings/2024/jan/jfk.wav",
            "meetings/voice/cv.mp3",
        ]
        assert {t["batch_id"] for t in status["tasks"]} == {body["batch_id"]}
        assert status["skipped"] == body["skipped"]
        one = api.client.get(f"/v1/status/{body['task_ids'][0]}", headers=HEADERS_A).json()
        assert one["batch_id"] == body["batch_id"]

        jsonl = api.client.get(f"/v1/batches/{body['batch_id']}/export", headers=HEADERS_A)
        assert jsonl.status_code == 200
        assert jsonl.headers["content-type"] == "application/x-ndjson"
        rows = [json.loads(line) for line in jsonl.text.splitlines()]
        assert [r["task_id"] for r in rows] == body["task_ids"], "one row per task, upload order"
        by_name = {r["name"]: r for r in rows}
        jfk = by_name["meetings/2024/jan/jfk.wav"]
        assert jfk["status"] == "COMPLETE"
        assert jfk["duration_s"] == pytest.approx(11.0, abs=0.1)
        assert isinstance(jfk["transcript"], str)
        assert jfk["language"]
        assert by_name["meetings/voice/cv.mp3"]["duration_s"] == pytest.approx(2.4, abs=0.2)

        as_csv = api.client.get(
            f"/v1/batches/{body['batch_id']}/export", headers=HEADERS_A, params={"format": "csv"}
        )
        assert as_csv.headers["content-type"] == "text/csv; charset=utf-8", "charset named once"
        table = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert [r["task_id"] for r in table] == body["task_ids"]
        assert table[0]["transcript"] == (rows[0]["transcript"] or "")

    def test_tar_gz_and_other_tenant(self, api, worker, tmp_path):
        archive = tar_with(
            tmp_path / "talks.tar.gz",
            [
                ("talks/day1/a.wav", shared_audio("lhotse/LJ002-0020.wav").read_bytes()),
                ("talks/day2/b.mp3", shared_audio("lhotse/common_voice_en_651325.mp3").read_bytes()),
            ],
        )
        response = _post_batch(api, [("talks.tar.gz", archive.read_bytes())])
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        assert _wait_batch(api, batch_id)["counts"] == {"COMPLETE": 2}
        assert api.client.get(f"/v1/batches/{batch_id}", headers=HEADERS_B).status_code == 404
        assert api.client.get(f"/v1/batches/{batch_id}/export", headers=HEADERS_B).status_code == 404


class TestMultiPart:
    """Several `file` parts, archives and recordings mixed."""

    def test_parts(self, api, worker, tmp_path):
        inner = zip_with(
            tmp_path / "more.zip",
            [("x/cv.mp3", shared_audio("lhotse/common_voice_en_651325.mp3").read_bytes())],
        )
        response = _post_batch(
            api,
            [
                ("jfk.wav", shared_audio("jfk_16k.wav").read_bytes()),
                ("notes.wav", b"plain text pretending to be audio"),
                ("more.zip", inner.read_bytes()),
            ],
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert [s["name"] for s in body["skipped"]] == ["notes.wav"]
        status = _wait_batch(api, body["batch_id"])
        assert sorted(t["filename"] for t in status["tasks"]) == ["jfk.wav", "more.zip/x/cv.mp3"]

    def test_own_body_limit_and_per_file_limit(self, service_env, start_process, worker):
        """Batches may be larger than one upload; each recording in them may not."""
        small = start_process("api", {**service_env, "MAIE_MAX_FILE_SIZE_MB": "0.5"})
        try:
            jfk = shared_audio("jfk_16k.wav").read_bytes()  # 344 KiB
            big = shared_audio("jfk.flac").read_bytes()  # 1.1 MiB
            assert small.submit(shared_audio("jfk.flac")).status_code == 413
            response = _post_batch(small, [("a.wav", jfk), ("b.wav", jfk), ("big.flac", big)])
            assert response.status_code == 202, response.text
            body = response.json()
            assert len(body["task_ids"]) == 2
            assert body["skipped"] == [
                {"name": "big.flac", "reason": "larger than one upload may be (MAIE_MAX_FILE_SIZE_MB=0.5)"}
            ]
            _wait_batch(small, body["batch_id"])
        finally:
            small.stop()

    def test_idempotency_key(self, api, worker):
        key = str(uuid.uuid4())
        parts = [("jfk.wav", shared_audio("jfk_16k.wav").read_bytes())]
        first = _post_batch(api, parts, headers={**HEADERS_A, "Idempotency-Key": key})
        again = _post_batch(api, parts, headers={**HEADERS_A, "Idempotency-Key": key})
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        _wait_batch(api, first.json()["batch_id"])


@pytest.mark.usefixtures("untouched")
class TestRefused:
    """Refused batches leave nothing behind."""

    def test_zip_bomb(self, api, tmp_path):
        bomb = zip_with(tmp_path / "bomb.zip", [("silence.wav", bytes(200 * 1024 * 1024))])
        assert bomb.stat().st_size < 1024 * 1024
        response = _post_batch(api, [("bomb.zip", bomb.read_bytes())])
        assert response.status_code == 413, response.text
        assert "zip bomb" in response.json()["detail"]

    def test_ten_thousand_members(self, api, tmp_path):
        flood = zip_many(tmp_path / "flood.zip", 10_000)
        response = _post_batch(api, [("flood.zip", flood.read_bytes())])
        assert response.status_code == 413
        assert "MAIE_BATCH_MAX_MEMBERS" in response.json()["detail"]

    def test_nothing_usable(self, api, tmp_path):
        response = _post_batch(api, [("a.txt", b"text"), ("b.wav", b"")])
        assert response.status_code == 422
        assert [s["name"] for s in response.json()["extra"]["skipped"]] == ["a.txt", "b.wav"]

    def test_unsafe_part_filename(self, api):
        response = _post_batch(api, [("../../etc/passwd", shared_audio("jfk_16k.wav").read_bytes())])
        assert response.status_code == 400

    def test_more_recordings_than_the_queue_holds(self, service_env, start_process, hostile_zip):
        small = start_process("api", {**service_env, "MAIE_MAX_QUEUE_DEPTH": "1"})
        try:
            response = _post_batch(small, [("meetings.zip", hostile_zip.read_bytes())])
            assert response.status_code == 422
            assert "MAIE_MAX_QUEUE_DEPTH=1" in response.json()["detail"]
        finally:
            small.stop()
