"""Re-summarization over HTTP with a real worker: a new version, no ASR, version 1 untouched.

The LLM is the OpenAI-compatible test server of tests/fixtures/llm_server.py (a test double); the
Redis, API and worker are real, started by ``llm_stack`` of test_llm_pipeline.py.
"""

from __future__ import annotations

import time

import pytest
from jsonschema import Draft202012Validator

from tests.fixtures.llm_server import Fault, llm_stack
from tests.fixtures.postgres import query
from tests.fixtures.services import HEADERS_A, HEADERS_B
from tests.integration.test_llm_pipeline import run

TEMPLATE = "meeting_notes_v1"
OTHER = "interview_notes_v1"


@pytest.fixture(scope="module")
def stack(service_env, start_process, tmp_path_factory, start_llm_server):
    yield from llm_stack(service_env, start_process, tmp_path_factory, start_llm_server())


@pytest.fixture
def llm(stack):
    server = stack[2]
    server.clear()
    yield server
    server.clear()


def summarize_again(api, task_id, template_id=OTHER, headers=HEADERS_A):
    return api.client.post(
        f"/v1/tasks/{task_id}/summaries", headers=headers, json={"template_id": template_id}
    )


def wait_job(api, task_id, job_id, timeout=60.0) -> tuple[dict, dict]:
    """Poll the status until the job's stage is done or failed; return (status, job stage)."""
    deadline = time.monotonic() + timeout
    while True:
        status = api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).json()
        job = next(s for s in status["stages"] if s.get("job_id") == job_id)
        if job.get("status", "pending") in {"done", "failed"}:
            return status, job
        assert time.monotonic() < deadline, f"job still {job['status']}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def database_url(stack):
    """URL of the stack's database, read from the API's environment."""
    return stack[0].env["MAIE_DATABASE_URL"]


def stored_version(database_url: str, task_id: str, version: int) -> str:
    """A result version as PostgreSQL holds it (its JSON text)."""
    statement = "SELECT body::text FROM result_versions WHERE task_id = %s AND version = %s"
    [(body,)] = query(database_url, statement, task_id, version)
    return str(body)


class TestResummary:
    """POST /v1/tasks/{id}/summaries."""

    def test_new_version_without_asr_and_version_one_untouched(self, stack, llm, database_url):
        api = stack[0]
        first = run(api, features="raw_transcript,summary")
        assert first["status"] == "COMPLETE", first
        task_id = first["task_id"]
        version_one = stored_version(database_url, task_id, 1)
        requests_before = len(llm.requests)

        accepted = summarize_again(api, task_id)
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert accepted.headers["Location"] == body["status_url"] == f"/v1/status/{task_id}"
        assert body["template_id"] == OTHER

        status, job = wait_job(api, task_id, body["job_id"])
        assert job["status"] == "done", job
        assert job["name"] == "summarize"
        assert job["template_id"] == OTHER
        assert job["result_version"] == 2
        assert job["attempts"] == 1
        # No ASR ran again: the pipeline's stages are as they were, each with one attempt.
        pipeline = [s for s in status["stages"] if "job_id" not in s]
        assert [s["name"] for s in pipeline] == ["preprocess", "transcribe", "summarize"]
        assert all(s["attempts"] == 1 for s in pipeline)
        assert llm.schema_names()[requests_before:] == [OTHER], "one LLM request, for the new template"

        assert status["status"] == "COMPLETE"
        assert status["result_version"] == 2, "status shows the latest version"
        assert status["template_id"] == TEMPLATE, "the task's own request is unchanged"
        schema = api.client.get(f"/v1/templates/{OTHER}", headers=HEADERS_A).json()["schema"]
        Draft202012Validator(schema).validate(status["results"]["summary"])
        assert status["results"]["segments"] == first["results"]["segments"]
        assert status["results"]["raw_transcript"] == first["results"]["raw_transcript"]
        assert status["versions"]["template"]["template_id"] == OTHER
        assert status["versions"]["asr_backend"] == first["versions"]["asr_backend"]

        assert stored_version(database_url, task_id, 1) == version_one, "version 1 is unchanged"
        listing = api.client.get(f"/v1/tasks/{task_id}/results", headers=HEADERS_A).json()
        assert [(v["version"], v["kind"], v["template_id"]) for v in listing["versions"]] == [
            (1, "pipeline", TEMPLATE),
            (2, "resummary", OTHER),
        ]
        v1 = api.client.get(f"/v1/tasks/{task_id}/results/1", headers=HEADERS_A).json()
        assert v1["versions"]["template"]["template_id"] == TEMPLATE

    def test_llm_failure_fails_the_job_not_the_task(self, stack, llm):
        api = stack[0]
        first = run(api, features="raw_transcript")
        task_id = first["task_id"]
        llm.inject(Fault.SCHEMA_VIOLATION, times=None, schema=OTHER)
        job_id = summarize_again(api, task_id).json()["job_id"]
        status, job = wait_job(api, task_id, job_id)
        assert job["status"] == "failed"
        assert "stayed unusable" in job["error"]
        assert status["status"] == "COMPLETE", "a failed re-summary leaves the task as it was"
        assert status["result_version"] == 1
        assert "error" not in status

    def test_refusals(self, stack, llm):
        api = stack[0]
        task_id = run(api, features="raw_transcript")["task_id"]
        assert summarize_again(api, task_id, template_id="nope_v1").status_code == 422
        assert summarize_again(api, task_id, headers=HEADERS_B).status_code == 404
        assert summarize_again(api, "00000000-0000-4000-8000-000000000000").status_code == 404
        missing = api.client.post(f"/v1/tasks/{task_id}/summaries", headers=HEADERS_A, json={})
        assert missing.status_code == 400

    def test_a_task_whose_summary_failed_keeps_its_transcript(self, stack, llm):
        """FAILED in summarize: the transcript is shown, exported, and can be summarized again."""
        api = stack[0]
        llm.inject(Fault.SCHEMA_VIOLATION, times=None, schema=TEMPLATE)
        failed = run(api, features="summary")
        task_id = failed["task_id"]
        assert (failed["status"], failed["failed_stage"]) == ("FAILED", "summarize"), failed
        assert failed["error_code"] == "llm_output_invalid"
        assert failed["result_version"] == 1
        results = failed["results"]
        assert results["raw_transcript"].strip()
        assert results["segments"]
        assert results["segments"][0]["id"] == 1
        assert results["language"], "the detected language is kept"
        assert "summary" not in results
        versions = api.client.get(f"/v1/tasks/{task_id}/results", headers=HEADERS_A).json()
        assert [v["kind"] for v in versions["versions"]] == ["partial"]
        for fmt in ("txt", "srt", "vtt", "json"):
            export = api.client.get(f"/v1/tasks/{task_id}/transcript.{fmt}", headers=HEADERS_A)
            assert export.status_code == 200, (fmt, export.text)
        exported = api.client.get(f"/v1/tasks/{task_id}/transcript.json", headers=HEADERS_A).json()
        assert [s["text"] for s in exported["segments"]] == [s["text"] for s in results["segments"]]

        llm.clear()  # the template's answers are good again
        accepted = summarize_again(api, task_id, template_id=TEMPLATE)
        assert accepted.status_code == 202, accepted.text
        status, job = wait_job(api, task_id, accepted.json()["job_id"])
        assert job["status"] == "done", job
        assert (status["status"], status["result_version"]) == ("FAILED", 2), "the task's status never moves"
        assert status["error_code"] == "llm_output_invalid"
        schema = api.client.get(f"/v1/templates/{TEMPLATE}", headers=HEADERS_A).json()["schema"]
        Draft202012Validator(schema).validate(status["results"]["summary"])
        assert status["results"]["raw_transcript"] == results["raw_transcript"]
        versions = api.client.get(f"/v1/tasks/{task_id}/results", headers=HEADERS_A).json()
        assert [v["kind"] for v in versions["versions"]] == ["partial", "resummary"]
