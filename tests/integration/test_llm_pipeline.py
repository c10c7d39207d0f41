"""Enhancement and summaries end to end: HTTP API, a real worker process, the LLM test server.

Each class runs its own Redis, API and worker (the shared ones have no LLM configured). The LLM is
the OpenAI-compatible test server of tests/fixtures/llm_server.py — a test double, not a model —
running in this process; the worker reaches it over HTTP like any vLLM server.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

import pytest
from jsonschema import Draft202012Validator

from maie.pipeline.llm.answers import unknown_segment_ids
from tests.fixtures.llm_answers import enhance_text
from tests.fixtures.llm_server import MODEL, Fault, llm_stack
from tests.fixtures.paths import shared_audio
from tests.fixtures.services import HEADERS_A

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
TEMPLATE = "meeting_notes_v1"


def template_schema(api) -> dict:
    return api.client.get(f"/v1/templates/{TEMPLATE}", headers=HEADERS_A).json()["schema"]


def run(api, **fields) -> dict:
    accepted = api.submit(shared_audio("jfk_16k.wav"), template_id=TEMPLATE, **fields)
    assert accepted.status_code == 202, accepted.text
    return api.wait(accepted.json()["task_id"])


@pytest.fixture(scope="module")
def stack(service_env, start_process, tmp_path_factory, start_llm_server):
    yield from llm_stack(service_env, start_process, tmp_path_factory, start_llm_server())


@pytest.fixture
def llm(stack):
    server = stack[2]
    server.clear()
    yield server
    server.clear()


class TestDefaultFeatures:
    """No features named: clean_transcript and summary, both from the LLM."""

    def test_complete_with_a_valid_summary(self, stack, llm):
        api = stack[0]
        status = run(api, features="")
        assert status["status"] == "COMPLETE", status
        assert status["features"] == ["clean_transcript", "summary"]
        stages = status["stages"]
        assert [s["name"] for s in stages] == ["preprocess", "transcribe", "enhance", "summarize"]
        assert all(s["status"] == "done" and s["attempts"] == 1 for s in stages)

        results = status["results"]
        Draft202012Validator(template_schema(api)).validate(results["summary"])
        assert unknown_segment_ids(results["summary"], {s["id"] for s in results["segments"]}) == []
        expected = " ".join(enhance_text(s["text"]) for s in results["segments"] if s["text"])
        assert results["clean_transcript"] == expected
        assert "raw_transcript" not in results
        assert "enhancement_metrics" not in results
        assert status["metrics"]["edit_rate_cleaning"] >= 0

        versions = status["versions"]
        assert versions["enhancement_llm"]["model"] == MODEL
        assert versions["enhancement_llm"]["task"] == "enhancement"
        assert versions["enhancement_llm"]["thinking"] is False
        assert versions["enhancement_llm"]["checkpoint_hash"] is None, "weights behind an HTTP server"
        assert versions["summarization_llm"]["task"] == "summary"
        assert versions["summarization_llm"]["structured_output"].startswith("json_schema")
        assert set(versions["summarization_llm"]["decoding_params"]) == {
            "temperature",
            "top_p",
            "top_k",
            "repetition_penalty",
            "max_tokens",
        }
        template = versions["template"]
        assert template["template_id"] == TEMPLATE
        assert (
            template["schema_sha256"]
            == hashlib.sha256((ROOT / f"templates/{TEMPLATE}.json").read_bytes()).hexdigest()
        )
        assert (
            template["prompt_sha256"]
            == hashlib.sha256((ROOT / f"templates/prompts/{TEMPLATE}.jinja").read_bytes()).hexdigest()
        )
        assert set(llm.schema_names()) == {"clean_transcript", TEMPLATE}
        assert {r["model"] for r in llm.requests} == {MODEL}

    def test_only_requested_stages_run(self, stack, llm):
        api = stack[0]
        status = run(api, features="raw_transcript,enhancement_metrics")
        assert status["status"] == "COMPLETE", status
        assert [s["name"] for s in status["stages"]] == ["preprocess", "transcribe", "enhance"]
        assert set(llm.schema_names()) <= {"clean_transcript"}
        results = status["results"]
        assert "summary" not in results
        assert "clean_transcript" not in results
        assert results["enhancement_metrics"]["segments"] == len(results["segments"])
        assert "template" not in status["versions"]

    def test_summary_alone_skips_enhancement(self, stack, llm):
        status = run(stack[0], features="summary")
        assert status["status"] == "COMPLETE", status
        assert [s["name"] for s in status["stages"]] == ["preprocess", "transcribe", "summarize"]
        assert llm.schema_names() == [TEMPLATE]

    def test_unknown_template_is_refused_at_submit(self, stack, llm):
        response = stack[0].submit(shared_audio("jfk_16k.wav"), features="summary", template_id="nope_v1")
        assert response.status_code == 422
        assert "nope_v1" in response.json()["detail"]
        assert "meeting_notes_v1" in response.json()["detail"]


class TestFaults:
    """Each misbehaviour of the LLM ends in a retry that succeeds or a FAILED task — never a bad summary."""

    def test_invalid_json_then_valid(self, stack, llm):
        llm.inject(Fault.INVALID_JSON, schema=TEMPLATE)
        status = run(stack[0], features="summary")
        assert status["status"] == "COMPLETE", status
        Draft202012Validator(template_schema(stack[0])).validate(status["results"]["summary"])
        assert llm.schema_names() == [TEMPLATE, TEMPLATE]

    @pytest.mark.parametrize(
        ("fault", "message"),
        [
            (Fault.SCHEMA_VIOLATION, "stayed unusable after 3 attempts"),
            (Fault.LENGTH, "cut off at max_tokens="),
        ],
    )
    def test_answers_that_stay_unusable_fail_the_task(self, stack, llm, fault, message):
        llm.inject(fault, times=None, schema=TEMPLATE)
        status = run(stack[0], features="summary")
        assert status["status"] == "FAILED", status
        assert status["error_code"] == "llm_output_invalid"
        assert status["failed_stage"] == "summarize"
        assert message in status["error"]
        assert "summary" not in status["results"], "no unusable summary is kept"
        assert status["results"]["raw_transcript"], "the transcript is kept (a partial result)"
        assert status["stages"][-1]["attempts"] == 1, "a permanent error is not retried"
        assert len(llm.requests) == 3

    def test_server_errors_are_retried_by_client_then_by_worker(self, stack, llm):
        """Three 500s: the client's two tries fail, the worker retries the stage, which then succeeds."""
        llm.inject(Fault.HTTP_500, times=3)
        status = run(stack[0], features="summary")
        assert status["status"] == "COMPLETE", status
        assert status["stages"][-1]["attempts"] == 2
        Draft202012Validator(template_schema(stack[0])).validate(status["results"]["summary"])

    def test_server_down_for_good_fails_after_retries(self, stack, llm):
        llm.inject(Fault.HTTP_500, times=None)
        status = run(stack[0], features="summary")
        assert status["status"] == "FAILED", status
        assert status["error_code"] == "llm_unavailable"
        assert "HTTP 500" in status["error"]
        host = llm.url.split("//", 1)[1].split("/", 1)[0]
        assert host not in status["error"], "the LLM server's internal address is not shown to clients"
        assert "MAIE_LLM_BASE_URL" in status["error"], "the setting that names the server is"
        deadline = time.monotonic() + 30
        while not any(
            "llm.unavailable" in line and host in line and status["task_id"] in line
            for line in stack[1].log().splitlines()
        ):
            assert time.monotonic() < deadline, "the worker logs the address with the task"
            time.sleep(0.1)
        assert status["stages"][-1]["attempts"] == 2
        assert "summary" not in status["results"]
        assert status["results"]["segments"], "retries used up: the transcript is still kept"

    def test_hang_past_the_timeout_is_retried(self, stack, llm):
        llm.hang_s = 5.0
        llm.inject(Fault.HANG, schema=TEMPLATE)
        status = run(stack[0], features="summary")
        assert status["status"] == "COMPLETE", status
        assert llm.schema_names() == [TEMPLATE, TEMPLATE]


def _user_prompt(request: dict) -> str:
    return next(m["content"] for m in request["messages"] if m["role"] == "user")


#: A transcript line of a summary prompt: ``[id] start-end text``.
_LINE = re.compile(r"^\[(\d+)\] [\d.]+-[\d.]+ (.*)$", re.MULTILINE)


@pytest.fixture(scope="module")
def meeting(stack):
    """The AMI excerpt diarized, cleaned and summarized with meeting_notes_v2; the LLM's requests."""
    api, _, server = stack
    server.clear()
    accepted = api.submit(
        shared_audio("pyannote/ami_mixture_4spk.wav"),
        features="clean_transcript,summary",
        template_id="meeting_notes_v2",
        diarize="true",
    )
    assert accepted.status_code == 202, accepted.text
    status = api.wait(accepted.json()["task_id"])
    assert status["status"] == "COMPLETE", status
    return status, list(server.requests)


class TestSpeakers:
    """A diarized meeting: enhancement keeps speakers, prompts show them, v2 notes and renames use them."""

    def test_summary_prompt_shows_the_speaker_of_every_line(self, meeting):
        status, requests = meeting
        segments = {s["id"]: s for s in status["results"]["segments"]}
        summary_requests = [
            r for r in requests if r["response_format"]["json_schema"]["name"] == "meeting_notes_v2"
        ]
        assert summary_requests
        lines = _LINE.findall(_user_prompt(summary_requests[0]))
        assert [int(i) for i, _ in lines] == list(segments)
        for segment_id, text in lines:
            segment = segments[int(segment_id)]
            # The clean text (enhancement kept the segment and its speaker) after the speaker.
            assert text == f"{segment['speaker']}: {enhance_text(segment['text'])}"

    def test_v2_notes_take_participants_and_owners_from_the_speakers(self, stack, meeting):
        status, _ = meeting
        summary = status["results"]["summary"]
        schema = stack[0].client.get("/v1/templates/meeting_notes_v2", headers=HEADERS_A).json()["schema"]
        Draft202012Validator(schema).validate(summary)
        labels = {s["id"] for s in status["results"]["speakers"]}
        assert summary["participants"][0]["speaker"] in labels
        assert summary["action_items"][0]["owner"] in labels
        assert status["versions"]["template"]["template_id"] == "meeting_notes_v2"

    def test_rename_reaches_the_summary_and_a_later_summary(self, stack, meeting):
        api = stack[0]
        status, _ = meeting
        task_id = status["task_id"]
        owner = status["results"]["summary"]["action_items"][0]["owner"]
        renamed = api.client.patch(
            f"/v1/tasks/{task_id}/speakers", headers=HEADERS_A, json={"names": {owner: "Alice Smith"}}
        )
        assert renamed.status_code == 200, renamed.text
        summary = renamed.json()["results"]["summary"]
        assert summary["action_items"][0]["owner"] == "Alice Smith"
        assert owner not in json.dumps(summary), "every reference to the label is renamed"

        again = api.client.post(
            f"/v1/tasks/{task_id}/summaries", headers=HEADERS_A, json={"template_id": "interview_notes_v2"}
        )
        assert again.status_code == 202, again.text
        deadline = time.monotonic() + 60
        status_url = f"/v1/status/{task_id}"
        while (latest := api.client.get(status_url, headers=HEADERS_A).json())["result_version"] < 3:
            assert time.monotonic() < deadline, latest
            time.sleep(0.2)
        third = api.client.get(f"/v1/tasks/{task_id}/results/3", headers=HEADERS_A).json()
        assert third["kind"] == "resummary"
        assert third["results"]["speakers"] == renamed.json()["results"]["speakers"], "names are kept"
        notes = third["results"]["summary"]
        assert "Alice Smith" in {notes["interviewer"], notes["interviewee"]}
        assert owner not in json.dumps(notes)
        version_one = api.client.get(f"/v1/tasks/{task_id}/results/1", headers=HEADERS_A).json()
        assert version_one["results"]["summary"] == status["results"]["summary"]


@pytest.fixture(scope="module")
def small_budget_stack(service_env, start_process, tmp_path_factory, start_llm_server):
    """At most 24 transcript tokens per summary request: any real transcript needs map-reduce."""
    yield from llm_stack(
        service_env, start_process, tmp_path_factory, start_llm_server(), MAIE_LLM_SUMMARY_CHUNK_TOKENS="24"
    )


class TestMapReduce:
    @pytest.mark.slow
    def test_long_meeting_is_summarised_in_parts(self, small_budget_stack):
        api, _, llm = small_budget_stack
        accepted = api.submit(
            shared_audio("pyannote/ami_mixture_4spk.wav"), features="summary", template_id=TEMPLATE
        )
        status = api.wait(accepted.json()["task_id"])
        assert status["status"] == "COMPLETE", status
        Draft202012Validator(template_schema(api)).validate(status["results"]["summary"])
        info = status["versions"]["summarization_llm"]["map_reduce"]
        assert info["parts"] >= 2
        assert info["reduce_rounds"] >= 1
        prompts = [r["messages"][0]["content"] for r in llm.requests]
        assert sum(f"of {info['parts']} of a longer meeting" in p for p in prompts) == info["parts"]
        assert sum(p.startswith("You are merging notes") for p in prompts) >= 1
