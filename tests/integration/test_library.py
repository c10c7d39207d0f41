"""The task library on PostgreSQL through the real API and worker: search, filters, deletion."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from maie.client import AsyncMaieClient, MaieClient
from maie.errors import NotFoundError
from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import query
from tests.fixtures.services import HEADERS_A, HEADERS_B, KEY_A

pytestmark = pytest.mark.usefixtures("worker")

#: Tables holding a task's rows, each with a ``task_id`` column.
TASK_TABLES = ("tasks", "task_stages", "artifacts", "result_versions", "search_texts", "search_documents")


def finished_task(api, **fields) -> dict:
    """Submit jfk.flac as tenant A and return its final status (COMPLETE asserted)."""
    accepted = api.submit(shared_audio("jfk.flac"), **fields)
    assert accepted.status_code == 202, accepted.text
    status = api.wait(accepted.json()["task_id"])
    assert status["status"] == "COMPLETE", status
    return status


def spoken_word(status: dict) -> str:
    """The longest word of the task's raw transcript (what the tiny model heard, whatever it is)."""
    words = re.findall(r"[A-Za-z]{4,}", status["results"]["raw_transcript"])
    assert words, status["results"]
    return max(words, key=len).lower()


def rows_of(database: str, task_id: str) -> dict[str, int]:
    """How many rows each table holds for ``task_id``."""
    return {
        table: query(database, f"SELECT count(*) FROM {table} WHERE task_id = %s", task_id)[0][0]  # noqa: S608 - fixed names
        for table in TASK_TABLES
    }


def maie(env, *args) -> subprocess.CompletedProcess[str]:
    """Run the ``maie`` command."""
    return subprocess.run(
        [sys.executable, "-m", "maie", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def search(api, q: str, headers=HEADERS_A, **params) -> dict:
    response = api.client.get("/v1/search", params={"q": q, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


class TestSearch:
    """GET /v1/search finds what was said, for its own tenant only."""

    def test_finds_a_spoken_word_with_its_segment(self, api):
        status = finished_task(api)
        task_id, word = status["task_id"], spoken_word(status)

        page = search(api, word)
        hit = next((h for h in page["hits"] if h["task_id"] == task_id), None)
        assert hit is not None, page
        assert hit["filename"] == "jfk.flac"
        assert datetime.fromisoformat(hit["submitted_at"]) <= datetime.now(UTC)
        segment = hit["segments"][0]
        assert segment["source"] in {"raw", "clean"}
        assert segment["id"] is not None
        assert 0 <= segment["start"] < segment["end"]
        assert "<mark>" in segment["snippet"]
        assert word in segment["snippet"].lower()

        other = search(api, word, headers=HEADERS_B)
        assert task_id not in {h["task_id"] for h in other["hits"]}, "another tenant's task is not found"

    def test_filters_and_paging(self, api):
        first = finished_task(api)
        second = finished_task(api)
        word = spoken_word(first)

        page = search(api, word, limit=1)
        assert [h["task_id"] for h in page["hits"]] == [second["task_id"]], "newest first"
        assert page["next_cursor"]
        rest = search(api, word, limit=1, cursor=page["next_cursor"])
        assert [h["task_id"] for h in rest["hits"]] == [first["task_id"]]

        after = (datetime.fromisoformat(second["submitted_at"]) - timedelta(microseconds=1)).isoformat()
        since = search(api, word, submitted_after=after)
        assert second["task_id"] in {h["task_id"] for h in since["hits"]}
        assert first["task_id"] not in {h["task_id"] for h in since["hits"]}
        failed = search(api, word, status="FAILED")
        assert not {first["task_id"], second["task_id"]} & {h["task_id"] for h in failed["hits"]}

        listing = api.client.get(
            "/v1/tasks", params={"submitted_after": after, "status": "COMPLETE"}, headers=HEADERS_A
        ).json()
        assert second["task_id"] in [t["task_id"] for t in listing["tasks"]]
        assert first["task_id"] not in [t["task_id"] for t in listing["tasks"]]

    @pytest.mark.parametrize(
        "params",
        [
            {"status": "DONE"},
            {"cursor": "nope"},
            {"submitted_after": "2026-02-01T00:00:00Z", "submitted_before": "2026-01-01"},
            {"q": "   "},
        ],
    )
    def test_bad_queries_are_400(self, api, params):
        response = api.client.get("/v1/search", params={"q": "x", **params}, headers=HEADERS_A)
        assert response.status_code == 400, response.text
        assert response.json()["detail"]

    def test_needs_a_key(self, api):
        assert api.client.get("/v1/search", params={"q": "x"}).status_code == 401


class TestDelete:
    """DELETE /v1/tasks/{id} and /v1/batches/{id} leave nothing behind."""

    def test_delete_removes_everything_once_and_only_for_its_tenant(self, api, service_env):
        database = service_env["MAIE_DATABASE_URL"]
        status = finished_task(api)
        task_id, word = status["task_id"], spoken_word(status)
        audio = Path(service_env["MAIE_DATA_DIR"]) / "audio" / task_id
        before = rows_of(database, task_id)
        assert before["tasks"] == 1
        assert before["result_versions"] == 1
        assert before["search_texts"] > 0
        assert before["artifacts"] > 0

        assert api.client.delete(f"/v1/tasks/{task_id}", headers=HEADERS_B).status_code == 404
        assert rows_of(database, task_id) == before, "another tenant's delete touches nothing"
        assert api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).status_code == 200

        response = api.client.delete(f"/v1/tasks/{task_id}", headers=HEADERS_A)
        assert response.status_code == 204, response.text
        assert response.content == b""
        assert set(rows_of(database, task_id).values()) == {0}
        assert not audio.exists(), "the audio is gone"
        assert api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).status_code == 404
        assert api.client.get(f"/v1/tasks/{task_id}/results/1", headers=HEADERS_A).status_code == 404
        assert task_id not in {h["task_id"] for h in search(api, word)["hits"]}
        assert api.client.delete(f"/v1/tasks/{task_id}", headers=HEADERS_A).status_code == 404

    def test_delete_batch_deletes_its_tasks(self, api, service_env):
        database = service_env["MAIE_DATABASE_URL"]
        files = [
            ("file", ("a.flac", shared_audio("jfk.flac").read_bytes())),
            ("file", ("b.wav", shared_audio("jfk_16k.wav").read_bytes())),
        ]
        accepted = api.client.post(
            "/v1/batches", files=files, data={"features": "raw_transcript"}, headers=HEADERS_A
        )
        assert accepted.status_code == 202, accepted.text
        batch_id, task_ids = accepted.json()["batch_id"], accepted.json()["task_ids"]
        for task_id in task_ids:
            api.wait(task_id)

        assert api.client.delete(f"/v1/batches/{batch_id}", headers=HEADERS_B).status_code == 404
        assert api.client.get(f"/v1/batches/{batch_id}", headers=HEADERS_A).status_code == 200
        assert api.client.delete(f"/v1/batches/{batch_id}", headers=HEADERS_A).status_code == 204
        assert api.client.get(f"/v1/batches/{batch_id}", headers=HEADERS_A).status_code == 404
        for task_id in task_ids:
            assert set(rows_of(database, task_id).values()) == {0}
        assert query(database, "SELECT count(*) FROM batches WHERE batch_id = %s", batch_id) == [(0,)]
        assert api.client.delete(f"/v1/batches/{batch_id}", headers=HEADERS_A).status_code == 404

    def test_a_task_deleted_while_queued_or_running_leaves_the_worker_well(self, api, worker, service_env):
        database = service_env["MAIE_DATABASE_URL"]
        accepted = api.submit(shared_audio("jfk.flac"))
        task_id = accepted.json()["task_id"]
        assert api.client.delete(f"/v1/tasks/{task_id}", headers=HEADERS_A).status_code == 204
        audio = Path(service_env["MAIE_DATA_DIR"]) / "audio" / task_id
        # Whatever stage was running ends without storing anything; the next task runs as usual.
        assert finished_task(api)["status"] == "COMPLETE"
        deadline = time.monotonic() + 30
        while audio.exists() or any(rows_of(database, task_id).values()):
            assert time.monotonic() < deadline, "the deleted task left something behind"
            time.sleep(0.1)
        lines = [json.loads(t) for t in worker.log().splitlines() if t.startswith("{")]
        mine = [line for line in lines if line.get("task_id") == task_id]
        handled = {"stage.task_missing", "task.deleted_while_running", "task.missing"}
        assert {line["event"] for line in mine} & handled, "the worker met the deleted task"
        assert not [line for line in mine if line["level"] in {"error", "critical"}], mine
        assert not [line for line in mine if line["event"] == "stage.error"], "no retry of a deleted task"


class TestClientAndCli:
    """The Python client's search and delete, and `maie search` / `maie delete`, on the real services."""

    def test_client_search_filters_and_delete(self, api):
        status = finished_task(api)
        task_id, word = status["task_id"], spoken_word(status)
        with MaieClient(api.url, KEY_A) as client:
            page = client.search(
                word, status="COMPLETE", submitted_after=datetime.now(UTC) - timedelta(hours=1)
            )
            hit = next(h for h in page.hits if h.task_id == task_id)
            assert hit.segments
            assert hit.segments[0].start is not None
            listed = client.tasks(status="COMPLETE", limit=200)
            assert task_id in [t.task_id for t in listed.tasks]
            client.delete(task_id)
            with pytest.raises(NotFoundError):
                client.delete(task_id)
            assert task_id not in [h.task_id for h in client.search(word).hits]

    async def test_async_client_search(self, api):
        status = finished_task(api)
        async with AsyncMaieClient(api.url, KEY_A) as client:
            page = await client.search(spoken_word(status))
            assert status["task_id"] in [h.task_id for h in page.hits]
            await client.delete(status["task_id"])

    def test_cli_search_and_delete(self, api, service_env):
        status = finished_task(api)
        task_id, word = status["task_id"], spoken_word(status)
        flags = ["--url", api.url, "--api-key", KEY_A]

        found = maie(service_env, "search", word, *flags)
        assert found.returncode == 0, found.stderr
        assert task_id in found.stdout
        assert "jfk.flac" in found.stdout
        assert f"[{word}]" in found.stdout.lower(), "matching words are marked"
        as_json = maie(service_env, "search", word, "--json", *flags)
        assert task_id in [h["task_id"] for h in json.loads(as_json.stdout)["hits"]]

        deleted = maie(service_env, "delete", task_id, "--yes", *flags)
        assert deleted.returncode == 0, deleted.stderr
        assert f"deleted task {task_id}" in deleted.stdout
        again = maie(service_env, "delete", task_id, "--yes", *flags)
        assert again.returncode == 1
        assert "not found" in again.stderr
        assert task_id not in maie(service_env, "search", word, "--json", *flags).stdout
