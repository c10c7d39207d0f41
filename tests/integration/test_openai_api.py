"""The official ``openai`` SDK against the running service (``/openai/v1``): real API and worker processes.

Nothing here is a test double: the SDK's own request path, parsing, streaming and exception
classes talk over HTTP to the session's ``maie api`` and ``maie worker``, which transcribe with
PocketSphinx (real words) and the tiny random Whisper model (which translates, in gibberish).
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import pytest
import srt
import webvtt

from tests.fixtures.paths import shared_audio
from tests.fixtures.services import HEADERS_A, HEADERS_B, KEY_A, KEY_B
from tests.fixtures.wer import wer_points

if TYPE_CHECKING:
    from tests.fixtures.services import Api

openai = pytest.importorskip("openai", reason="the openai SDK is a dev dependency (uv sync installs it)")
pytest.importorskip("pocketsphinx", reason="the pocketsphinx extra is not installed (uv sync installs it)")

from openai.types.audio import TranscriptionVerbose, TranslationVerbose  # noqa: E402

#: A short clip with an exact reference: 5.9 s of read speech.
CLIP = "picovoice/test.wav"
#: The SDK's default is 600 s; the service answers within MAIE_SYNC_TIMEOUT_S (300 s) either way.
TIMEOUT_S = 120.0


def sdk(api: Api, key: str = KEY_A, **options) -> openai.OpenAI:
    """The SDK as its users make it: ``base_url`` and ``api_key`` (sent as ``Authorization: Bearer``)."""
    return openai.OpenAI(base_url=f"{api.url}/openai/v1", api_key=key, timeout=TIMEOUT_S, **options)


def reference() -> str:
    return shared_audio(CLIP).with_suffix(".txt").read_text(encoding="utf-8").strip()


def transcribe(client: openai.OpenAI, model: str = "pocketsphinx", **kwargs):
    with shared_audio(CLIP).open("rb") as audio:
        return client.audio.transcriptions.with_raw_response.create(file=audio, model=model, **kwargs)


def task_ids(api: Api) -> set[str]:
    """Tenant A's newest tasks (tests of one module run in turn, on one worker)."""
    return {
        t["task_id"]
        for t in api.client.get("/v1/tasks", headers=HEADERS_A, params={"limit": 100}).json()["tasks"]
    }


def stored(api: Api, task_id: str) -> dict:
    return api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).json()


@pytest.fixture(scope="module")
def client(api, worker):
    with sdk(api) as client:
        yield client


@pytest.fixture(scope="module")
def verbose(client, api):
    """One verbose_json transcription with words and segments, and its stored task."""
    raw = transcribe(client, response_format="verbose_json", timestamp_granularities=["word", "segment"])
    return raw.parse(), stored(api, raw.headers["x-maie-task-id"])


class TestModels:
    def test_list_is_the_available_backends_and_variants(self, client, api):
        ids = [model.id for model in client.models.list()]
        described = api.client.get("/v1/models", headers=HEADERS_A).json()["models"]
        available = {m["backend_id"] for m in described if m["available"]}
        variants = {
            f"{m['backend_id']}:{v['name']}"
            for m in described
            if m["available"]
            for v in m.get("variants") or []
        }
        assert set(ids) == available | variants | {"whisper-1"}
        assert {"whisper", "whisper-1", "pocketsphinx"} <= set(ids)
        assert len(ids) == len(set(ids))

    def test_retrieve(self, client):
        assert client.models.retrieve("pocketsphinx").id == "pocketsphinx"
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve("gpt-4o-transcribe")
        assert caught.value.code == "model_not_found"


class TestTranscriptions:
    """Every response format, words, and streaming, each checked against the task it stored."""

    def test_json_is_the_stored_transcript_in_real_words(self, client, api):
        raw = transcribe(client)
        text = raw.parse().text
        task = stored(api, raw.headers["x-maie-task-id"])
        assert task["status"] == "COMPLETE"
        assert task["asr_backend"] == "pocketsphinx"
        assert task["features"] == ["raw_transcript"]
        assert text == " ".join(s["text"] for s in task["results"]["segments"] if s["text"])
        assert wer_points(reference(), text) < 50, text  # PocketSphinx's real words (about 30 here)

    def test_the_task_is_the_tenants_like_any_other(self, client, api):
        raw = transcribe(client, response_format="text")
        task_id = raw.headers["x-maie-task-id"]
        listed = api.client.get("/v1/tasks", headers=HEADERS_A, params={"limit": 100}).json()["tasks"]
        assert task_id in [t["task_id"] for t in listed]
        assert api.client.get(f"/v1/status/{task_id}", headers=HEADERS_B).status_code == 404

    def test_text(self, client, api):
        raw = transcribe(client, response_format="text")
        text = raw.parse()
        assert isinstance(text, str)
        assert text.endswith("\n")
        segments = stored(api, raw.headers["x-maie-task-id"])["results"]["segments"]
        assert text.strip() == " ".join(s["text"] for s in segments if s["text"])

    def test_srt(self, client, api):
        raw = transcribe(client, response_format="srt")
        cues = list(srt.parse(raw.parse()))
        segments = stored(api, raw.headers["x-maie-task-id"])["results"]["segments"]
        assert [c.content for c in cues] == [s["text"] for s in segments if s["text"]]
        assert cues[0].start.total_seconds() == pytest.approx(segments[0]["start"], abs=0.001)

    def test_vtt(self, client, api):
        raw = transcribe(client, response_format="vtt")
        captions = webvtt.from_buffer(io.StringIO(raw.parse()))
        segments = stored(api, raw.headers["x-maie-task-id"])["results"]["segments"]
        assert [c.text for c in captions] == [s["text"] for s in segments if s["text"]]

    def test_verbose_json_with_words(self, verbose):
        result, task = verbose
        assert isinstance(result, TranscriptionVerbose)
        assert result.language == "english"
        assert result.duration == pytest.approx(task["metrics"]["input_duration_seconds"])
        segments = task["results"]["segments"]
        assert [s.text for s in result.segments] == [s["text"] for s in segments]
        words = [w["word"] for s in segments for w in s.get("words") or []]
        assert words, "word timestamps were asked for"
        assert [w.word for w in result.words] == words
        assert all(0 <= w.start <= w.end <= result.duration for w in result.words)
        assert json.loads(result.model_dump_json())["task"] == "transcribe"

    def test_streaming(self, client, api):
        with shared_audio(CLIP).open("rb") as audio:
            raw = client.audio.transcriptions.with_raw_response.create(
                file=audio, model="pocketsphinx", stream=True
            )
        assert raw.headers["content-type"].startswith("text/event-stream")
        events = list(raw.parse())
        assert [e.type for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1)
        assert events[-1].type == "transcript.text.done"
        assert "".join(e.delta for e in events[:-1]) == events[-1].text
        segments = stored(api, raw.headers["x-maie-task-id"])["results"]["segments"]
        assert events[-1].text == " ".join(s["text"] for s in segments if s["text"])

    def test_whisper_1_is_whisper(self, client, api):
        raw = transcribe(client, model="whisper-1", response_format="verbose_json", language="en")
        task = stored(api, raw.headers["x-maie-task-id"])
        assert task["status"] == "COMPLETE"
        assert task["asr_backend"] == "whisper"
        assert isinstance(raw.parse(), TranscriptionVerbose)


class TestTranslations:
    def test_whisper_translates_into_english(self, client, api):
        with shared_audio("picovoice/test_de.wav").open("rb") as audio:
            raw = client.audio.translations.with_raw_response.create(
                file=audio, model="whisper-1", response_format="verbose_json"
            )
        result = raw.parse()
        assert isinstance(result, TranslationVerbose)
        assert result.language == "english"
        task = stored(api, raw.headers["x-maie-task-id"])
        assert task["status"] == "COMPLETE"
        assert task["versions"]["asr_backend"]["decoding_params"]["task"] == "translate"

    def test_a_backend_that_cannot_translate_is_422(self, client):
        with shared_audio(CLIP).open("rb") as audio, pytest.raises(openai.UnprocessableEntityError) as caught:
            client.audio.translations.create(file=audio, model="pocketsphinx")
        assert "translate" in caught.value.message
        assert caught.value.body["type"] == "invalid_request_error"

    def test_v1_process_takes_task_translate(self, api, worker):
        refused = api.submit(shared_audio(CLIP), asr_backend="pocketsphinx", task="translate")
        assert refused.status_code == 422
        assert "translate" in refused.json()["detail"]
        assert api.submit(shared_audio(CLIP), task="sing").status_code == 400
        accepted = api.submit(shared_audio(CLIP), asr_backend="whisper", task="translate")
        assert accepted.status_code == 202
        done = api.wait(accepted.json()["task_id"])
        assert done["status"] == "COMPLETE"
        assert done["versions"]["asr_backend"]["decoding_params"]["task"] == "translate"


class TestErrors:
    """OpenAI's error shape, so the SDK raises its own classes."""

    def test_a_wrong_key_is_an_authentication_error(self, api):
        with sdk(api, key="not-a-key") as wrong, pytest.raises(openai.AuthenticationError) as caught:
            wrong.models.list()
        assert caught.value.status_code == 401
        assert caught.value.body["type"] == "authentication_error"
        with sdk(api, key="not-a-key") as wrong, pytest.raises(openai.AuthenticationError):
            transcribe(wrong)

    def test_an_unknown_model_is_not_found(self, client):
        for model in ("gpt-4o-transcribe", "whisper:no-such-variant"):
            with pytest.raises(openai.NotFoundError) as caught:
                transcribe(client, model=model)
            assert caught.value.code == "model_not_found"
            assert caught.value.param == "model"

    def test_bad_fields_are_bad_requests(self, client):
        with pytest.raises(openai.BadRequestError) as caught:
            transcribe(client, timestamp_granularities=["word"])  # needs verbose_json
        assert caught.value.param == "timestamp_granularities[]"
        with pytest.raises(openai.BadRequestError) as caught:
            transcribe(client, response_format="yaml")
        assert caught.value.param == "response_format"
        with pytest.raises(openai.BadRequestError):
            transcribe(client, temperature=1.5)

    def test_not_audio_is_415_and_no_task(self, client, api):
        before = task_ids(api)
        with pytest.raises(openai.APIStatusError) as caught:
            client.audio.transcriptions.create(
                file=("notes.wav", b"not audio at all" * 100), model="pocketsphinx"
            )
        assert caught.value.status_code == 415
        assert caught.value.code == "unsupported_media"
        assert task_ids(api) == before


@pytest.fixture(scope="module")
def impatient(service_env, start_process, worker) -> Api:
    """An API that waits 10 ms for results (so each answer times out) and allows two submissions a minute."""
    env = {**service_env, "MAIE_SYNC_TIMEOUT_S": "0.01", "MAIE_RATE_LIMIT_SUBMIT": "2/minute"}
    return start_process("api", env)


class TestPastTheWait:
    def test_a_slow_task_answers_504_with_its_id_and_is_not_sent_again(self, impatient):
        before = task_ids(impatient)
        with sdk(impatient) as client, pytest.raises(openai.InternalServerError) as caught:
            transcribe(client)
        error = caught.value
        assert error.status_code == 504
        assert error.code == "result_timeout"
        assert error.response.headers["x-should-retry"] == "false"
        task_id = error.body["task_id"]
        assert error.body["status_url"] == f"/v1/status/{task_id}"
        assert impatient.wait(task_id)["status"] == "COMPLETE"
        # The SDK retries 5xx by itself (twice, by default); told not to, it sent the file once.
        assert task_ids(impatient) - before == {task_id}

    def test_a_slow_stream_ends_with_an_error_event_naming_the_task(self, impatient):
        with sdk(impatient) as client, shared_audio(CLIP).open("rb") as audio:
            stream = client.audio.transcriptions.create(file=audio, model="pocketsphinx", stream=True)
            with pytest.raises(openai.APIError) as caught:
                list(stream)
        assert caught.value.code == "result_timeout"
        assert impatient.wait(caught.value.body["task_id"])["status"] == "COMPLETE"

    def test_a_spent_rate_limit_is_a_rate_limit_error(self, impatient):
        with sdk(impatient, key=KEY_B, max_retries=0) as client:
            codes, queued = [], []
            for _ in range(3):
                try:
                    transcribe(client)
                except openai.RateLimitError as exc:
                    codes.append(exc.code)
                except openai.InternalServerError as exc:  # the 10 ms wait
                    codes.append(exc.code)
                    queued.append(exc.body["task_id"])
        assert codes == ["result_timeout", "result_timeout", "rate_limited"]
        # Finished before the next test, which may count the store's keys.
        assert all(impatient.wait(t, headers=HEADERS_B)["status"] == "COMPLETE" for t in queued)
