"""Result versions, transcript exports, the task list, status events and Idempotency-Key, over HTTP."""

from __future__ import annotations

import html
import json
import threading
import uuid

import httpx
import pysubs2
import pytest
from httpx_sse import connect_sse

from tests.fixtures.paths import shared_audio
from tests.fixtures.services import HEADERS_A, HEADERS_B
from tests.fixtures.timecodes import ms


@pytest.fixture(scope="module")
def done(api, worker):
    """One completed task (with word timestamps) and its status body."""
    accepted = api.submit(shared_audio("jfk_16k.wav"), word_timestamps="true")
    assert accepted.status_code == 202, accepted.text
    status = api.wait(accepted.json()["task_id"])
    assert status["status"] == "COMPLETE", status
    return status


def _cues(segments):
    """(start_ms, end_ms, text) of the segments that have text, as a subtitle file keeps them."""
    return [(ms(s["start"]), ms(s["end"]), s["text"].strip()) for s in segments if s["text"].strip()]


class TestResultVersions:
    """GET /v1/tasks/{id}/results and /results/{n}."""

    def test_list_and_get(self, api, done):
        task_id = done["task_id"]
        listing = api.client.get(f"/v1/tasks/{task_id}/results", headers=HEADERS_A)
        assert listing.status_code == 200
        body = listing.json()
        assert body["latest"] == 1
        assert [v["version"] for v in body["versions"]] == [1]
        assert body["versions"][0]["kind"] == "pipeline"
        assert "segments" not in json.dumps(body), "the list does not carry transcripts"

        one = api.client.get(f"/v1/tasks/{task_id}/results/1", headers=HEADERS_A)
        assert one.status_code == 200
        version = one.json()
        assert version["version"] == 1
        assert version["results"] == done["results"], "status shows the latest version"
        assert version["versions"] == done["versions"]
        again = api.client.get(
            f"/v1/tasks/{task_id}/results/1", headers={**HEADERS_A, "If-None-Match": one.headers["ETag"]}
        )
        assert again.status_code == 304

    @pytest.mark.parametrize("path", ["results/2", "results/0", "transcript.srt?version=5"])
    def test_missing_version_is_404(self, api, done, path):
        response = api.client.get(f"/v1/tasks/{done['task_id']}/{path}", headers=HEADERS_A)
        assert response.status_code in {404, 400}, response.text
        if "srt" in path:
            assert response.status_code == 404
            assert "versions are 1 to 1" in response.json()["detail"]

    def test_other_tenant_sees_nothing(self, api, done):
        for path in ("results", "results/1", "transcript.txt"):
            assert api.client.get(f"/v1/tasks/{done['task_id']}/{path}", headers=HEADERS_B).status_code == 404


class TestExports:
    """Transcript exports parse back with an independent subtitle parser and keep segment times."""

    def test_srt(self, api, done):
        response = api.client.get(f"/v1/tasks/{done['task_id']}/transcript.srt", headers=HEADERS_A)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-subrip; charset=utf-8"
        parsed = pysubs2.SSAFile.from_string(response.text, format_="srt")
        expected = _cues(done["results"]["segments"])
        assert expected, "the clip has segments with text"
        assert [(e.start, e.end) for e in parsed] == [(s, e) for s, e, _ in expected]
        for event, (_, _, text) in zip(parsed, expected, strict=True):
            if not set(text) & set("<>{}\\"):  # pysubs2 reads those as markup
                assert event.plaintext == text

    def test_vtt(self, api, done):
        response = api.client.get(f"/v1/tasks/{done['task_id']}/transcript.vtt", headers=HEADERS_A)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/vtt; charset=utf-8", "charset named once"
        assert response.text.startswith("WEBVTT")
        parsed = pysubs2.SSAFile.from_string(response.text, format_="vtt")
        expected = _cues(done["results"]["segments"])
        assert [(e.start, e.end) for e in parsed] == [(s, e) for s, e, _ in expected]
        for event, (_, _, text) in zip(parsed, expected, strict=True):
            if not set(text) & set("{}\\"):
                assert html.unescape(event.plaintext) == text

    def test_txt_and_json(self, api, done):
        segments = done["results"]["segments"]
        txt = api.client.get(f"/v1/tasks/{done['task_id']}/transcript.txt", headers=HEADERS_A)
        assert txt.status_code == 200
        assert txt.headers["content-type"] == "text/plain; charset=utf-8", "charset named once"
        assert txt.text.splitlines() == [t for _, _, t in _cues(segments)]
        as_json = api.client.get(f"/v1/tasks/{done['task_id']}/transcript.json", headers=HEADERS_A).json()
        assert as_json["segments"] == segments
        assert as_json["result_version"] == 1
        assert as_json["language"] == done["results"]["language"]

    def test_unfinished_task_is_409(self, api, worker):
        accepted = api.submit(shared_audio("mfa/acoustic_corpus.wav")).json()
        response = api.client.get(f"/v1/tasks/{accepted['task_id']}/transcript.srt", headers=HEADERS_A)
        status = api.client.get(accepted["status_url"], headers=HEADERS_A).json()["status"]
        if status != "COMPLETE":  # a fast worker may already have finished it
            assert response.status_code in {409, 200}
        api.wait(accepted["task_id"])


class TestTaskList:
    """GET /v1/tasks is per tenant, newest first and cursor-paged."""

    def test_paging_is_complete_and_ordered(self, api, done):
        seen, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = api.client.get("/v1/tasks", headers=HEADERS_A, params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            assert len(body["tasks"]) <= 2
            seen += body["tasks"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        ids = [t["task_id"] for t in seen]
        assert len(ids) == len(set(ids)), "no task is listed twice"
        assert done["task_id"] in ids
        submitted = [t["submitted_at"] for t in seen]
        assert submitted == sorted(submitted, reverse=True)
        everything = api.client.get("/v1/tasks", headers=HEADERS_A, params={"limit": 200}).json()
        assert [t["task_id"] for t in everything["tasks"]] == ids

    def test_status_filter_and_tenants(self, api, done):
        complete = api.client.get("/v1/tasks", headers=HEADERS_A, params={"status": "complete"}).json()
        assert complete["tasks"]
        assert {t["status"] for t in complete["tasks"]} == {"COMPLETE"}
        other = api.client.get("/v1/tasks", headers=HEADERS_B, params={"limit": 200}).json()
        assert done["task_id"] not in [t["task_id"] for t in other["tasks"]]

    @pytest.mark.parametrize(
        ("params", "status"),
        [
            ({"status": "DONE"}, 400),
            ({"status": ""}, 400),
            ({"status": ","}, 400),
            ({"cursor": "not-a-cursor"}, 400),
            ({"limit": 0}, 400),
            ({"limit": 201}, 400),
        ],
    )
    def test_bad_parameters(self, api, params, status):
        assert api.client.get("/v1/tasks", headers=HEADERS_A, params=params).status_code == status


class TestEvents:
    """GET /v1/status/{id}/events streams status changes until the task finishes."""

    def test_stream_until_terminal(self, api, worker):
        task_id = api.submit(shared_audio("jfk_16k.wav")).json()["task_id"]
        events = []
        with connect_sse(api.client, "GET", f"/v1/status/{task_id}/events", headers=HEADERS_A) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            events += [(e.event, e.id, json.loads(e.data)) for e in source.iter_sse()]
        statuses = [data["status"] for _, _, data in events]
        assert statuses[-1] == "COMPLETE"
        assert all(event == "status" for event, _, _ in events)
        ranks = ["PENDING", "PREPROCESSING", "PROCESSING_ASR", "COMPLETE"]
        assert [ranks.index(s) for s in statuses] == sorted(ranks.index(s) for s in statuses)
        final = api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A)
        assert events[-1][1] == final.headers["ETag"], "an event id is the status ETag"
        assert events[-1][2] == final.json()

    def test_reconnect_with_last_event_id_skips_known_state(self, api, done):
        first = api.client.get(f"/v1/status/{done['task_id']}", headers=HEADERS_A)
        headers = {**HEADERS_A, "Last-Event-ID": first.headers["ETag"]}
        with connect_sse(
            api.client, "GET", f"/v1/status/{done['task_id']}/events", headers=headers
        ) as source:
            assert list(source.iter_sse()) == []

    def test_unknown_task_is_404(self, api):
        response = api.client.get(f"/v1/status/{uuid.uuid4()}/events", headers=HEADERS_A)
        assert response.status_code == 404


class TestIdempotencyKey:
    """A repeated Idempotency-Key returns the first task, also when the repeats race."""

    def test_repeat_returns_first_task(self, api, worker):
        key = str(uuid.uuid4())
        first = api.submit(shared_audio("jfk_16k.wav"), headers={**HEADERS_A, "Idempotency-Key": key})
        assert first.status_code == 202
        again = api.submit(shared_audio("jfk_16k.wav"), headers={**HEADERS_A, "Idempotency-Key": key})
        assert again.status_code == 202
        assert again.json()["task_id"] == first.json()["task_id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        other_tenant = api.submit(shared_audio("jfk_16k.wav"), headers={**HEADERS_B, "Idempotency-Key": key})
        assert other_tenant.json()["task_id"] != first.json()["task_id"], "keys are per tenant"
        changed = api.submit(
            shared_audio("jfk_16k.wav"), headers={**HEADERS_A, "Idempotency-Key": key}, language="en"
        )
        assert changed.status_code == 422
        api.wait(first.json()["task_id"])
        api.wait(other_tenant.json()["task_id"], headers=HEADERS_B)

    def test_same_name_other_audio_is_a_different_request(self, api, worker, tmp_path):
        """The file's bytes are part of the request: another recording under the same name is a 422."""
        key = str(uuid.uuid4())
        first = api.submit(shared_audio("jfk_16k.wav"), headers={**HEADERS_A, "Idempotency-Key": key})
        assert first.status_code == 202, first.text
        impostor = tmp_path / "jfk_16k.wav"
        impostor.write_bytes(shared_audio("lhotse/LJ002-0020.wav").read_bytes())
        other = api.submit(impostor, headers={**HEADERS_A, "Idempotency-Key": key})
        assert other.status_code == 422, other.text
        assert "different request" in other.json()["detail"]
        again = api.submit(shared_audio("jfk_16k.wav"), headers={**HEADERS_A, "Idempotency-Key": key})
        assert again.json()["task_id"] == first.json()["task_id"], "the same bytes still replay"
        api.wait(first.json()["task_id"])

    def test_concurrent_repeats_make_one_task(self, api, worker):
        key = str(uuid.uuid4())
        path = shared_audio("jfk_16k.wav")
        answers: list[httpx.Response] = []
        barrier = threading.Barrier(4)

        def submit():
            with httpx.Client(base_url=api.url, timeout=30) as client, path.open("rb") as fh:
                barrier.wait()
                answers.append(
                    client.post(
                        "/v1/process",
                        headers={**HEADERS_A, "Idempotency-Key": key},
                        files={"file": (path.name, fh)},
                        data={"features": "raw_transcript"},
                    )
                )

        threads = [threading.Thread(target=submit) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        created = {a.json()["task_id"] for a in answers if a.status_code == 202}
        assert len(created) == 1, [a.text for a in answers]
        assert {a.status_code for a in answers} <= {202, 409}
        retried = api.submit(path, headers={**HEADERS_A, "Idempotency-Key": key})
        assert retried.json()["task_id"] in created
        api.wait(created.pop())

    def test_failed_request_frees_its_key(self, api, tmp_path):
        key = str(uuid.uuid4())
        text = tmp_path / "notes.wav"
        text.write_text("not audio")
        assert api.submit(text, headers={**HEADERS_A, "Idempotency-Key": key}).status_code == 415
        ok = api.submit(shared_audio("jfk_16k.wav"), headers={**HEADERS_A, "Idempotency-Key": key})
        assert ok.status_code == 202, ok.text
        api.wait(ok.json()["task_id"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/tasks"),
        ("GET", "/v1/tasks/{id}/results"),
        ("GET", "/v1/tasks/{id}/results/1"),
        ("GET", "/v1/tasks/{id}/transcript.srt"),
        ("GET", "/v1/status/{id}/events"),
        ("POST", "/v1/batches"),
        ("GET", "/v1/batches/{id}"),
        ("GET", "/v1/batches/{id}/export"),
    ],
)
def test_every_new_route_needs_a_key(api, method, path):
    response = api.client.request(method, path.format(id=uuid.uuid4()), headers={"X-API-Key": "wrong"})
    assert response.status_code == 401
