"""OpenAI response shapes, read back by the official openai SDK itself.

Bodies are parsed with the SDK's own types, and, through an ``openai.OpenAI`` client with strict
response validation, by the SDK's request path: the client talks to an in-process HTTP transport
(a test double of the server, ``httpx2.MockTransport``) that answers with these bodies, so the
SDK's parsing, streaming and error classes are the real ones. The real server comes with the
``/openai/v1`` routes.
"""

from __future__ import annotations

import io
import json

import msgspec
import pytest
import srt
import webvtt

from maie.errors import (
    BackendUnavailableError,
    InvalidRequestError,
    ModelNotFoundError,
    QueueFullError,
    ResultTimeoutError,
    StoreUnavailableError,
    UnauthorizedError,
)
from maie.openai_formats import (
    WHISPER_ALIAS,
    Granularity,
    ResponseFormat,
    error_response,
    language_name,
    model_list,
    resolve_model,
    stream_events,
    transcription_body,
)
from maie.schemas import ModelInfo, ModelVariant, Segment, Word

openai = pytest.importorskip("openai", reason="the openai SDK is a dev dependency (uv sync installs it)")
httpx2 = pytest.importorskip("httpx2", reason="comes with the openai SDK")

from openai.types.audio import (  # noqa: E402
    Transcription,
    TranscriptionStreamEvent,
    TranscriptionVerbose,
    TranslationVerbose,
)

SEGMENTS = [
    Segment(
        id=1,
        start=0.32,
        end=3.9,
        text="And so, my fellow Americans,",
        confidence=0.8,
        words=[
            Word(start=0.32, end=0.6, word="And", probability=0.9),
            Word(start=0.6, end=0.9, word="so,", probability=0.9),
            Word(start=1.0, end=1.4, word="my", probability=0.8),
            Word(start=1.4, end=2.0, word="fellow", probability=0.7),
            Word(start=2.0, end=3.9, word="Americans,", probability=0.9),
        ],
    ),
    Segment(id=2, start=4.1, end=7.64, text="ask not what your country can do for you", confidence=None),
]


def body(fmt: ResponseFormat, **kwargs) -> tuple[bytes, str]:
    return transcription_body(SEGMENTS, response_format=fmt, language="en", duration_s=11.0, **kwargs)


class TestBodies:
    def test_json(self):
        data, media = body(ResponseFormat.JSON)
        assert media == "application/json"
        parsed = Transcription.model_validate(json.loads(data))
        assert parsed.text == "And so, my fellow Americans, ask not what your country can do for you"

    def test_verbose_json_with_segments_and_words(self):
        data, _ = body(ResponseFormat.VERBOSE_JSON, granularities=[Granularity.SEGMENT, Granularity.WORD])
        raw = json.loads(data)
        parsed = TranscriptionVerbose.model_validate(raw)
        assert raw["task"] == "transcribe"
        assert (parsed.language, parsed.duration) == ("english", 11.0)
        assert [s.id for s in parsed.segments] == [0, 1]
        first = parsed.segments[0]
        assert (first.start, first.end, first.seek) == (0.32, 3.9, 32)
        assert first.avg_logprob == pytest.approx(-0.2231, abs=1e-3)  # log(0.8)
        assert 0 < first.compression_ratio < 2.4
        assert first.tokens == []
        assert [w.word for w in parsed.words] == ["And", "so,", "my", "fellow", "Americans,"]
        assert parsed.words[-1].end == 3.9

    def test_verbose_json_words_only_when_asked(self):
        segments_only = json.loads(body(ResponseFormat.VERBOSE_JSON)[0])
        assert "words" not in segments_only
        assert len(segments_only["segments"]) == 2
        words_only = TranscriptionVerbose.model_validate(
            json.loads(body(ResponseFormat.VERBOSE_JSON, granularities=[Granularity.WORD])[0])
        )
        assert words_only.segments is None
        assert len(words_only.words) == 5

    def test_translation_verbose(self):
        data, _ = body(ResponseFormat.VERBOSE_JSON, task="translate")
        parsed = TranslationVerbose.model_validate(json.loads(data))
        assert json.loads(data)["task"] == "translate"
        assert parsed.language == "english"

    def test_text_srt_vtt(self):
        text, media = body(ResponseFormat.TEXT)
        assert media.startswith("text/plain")
        assert text.decode() == "And so, my fellow Americans, ask not what your country can do for you\n"
        subtitles = list(srt.parse(body(ResponseFormat.SRT)[0].decode()))
        assert [s.content for s in subtitles] == [s.text for s in SEGMENTS]
        assert subtitles[1].start.total_seconds() == 4.1
        captions = webvtt.from_buffer(io.StringIO(body(ResponseFormat.VTT)[0].decode()))
        assert [c.text for c in captions] == [s.text for s in SEGMENTS]

    def test_language_names(self):
        assert [language_name(c) for c in ("en", "vi", "yue", "xx", None)] == [
            "english",
            "vietnamese",
            "cantonese",
            "xx",
            "unknown",
        ]


class TestStreamEvents:
    def test_deltas_add_up_to_the_done_text(self):
        from openai._streaming import SSEDecoder
        from pydantic import TypeAdapter

        data = b"".join(stream_events(s.text for s in SEGMENTS))
        adapter = TypeAdapter(TranscriptionStreamEvent)
        events = [adapter.validate_python(sse.json()) for sse in SSEDecoder().iter_bytes(iter([data]))]
        assert [e.type for e in events] == ["transcript.text.delta"] * 2 + ["transcript.text.done"]
        assert "".join(e.delta for e in events[:-1]) == events[-1].text
        assert events[-1].text == "And so, my fellow Americans, ask not what your country can do for you"


class Server:
    """A test double of the service: answers each request with a prepared status, body and type."""

    def __init__(self, status: int, content: bytes, media: str = "application/json") -> None:
        self.status, self.content, self.media = status, content, media
        self.requests: list = []

    def __call__(self, request):
        self.requests.append(request)
        return httpx2.Response(self.status, content=self.content, headers={"content-type": self.media})

    def client(self):
        return openai.OpenAI(
            base_url="http://maie.test/openai/v1",
            api_key="key",
            max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(self)),
            _strict_response_validation=True,
        )


def transcribe(server: Server, **kwargs):
    return server.client().audio.transcriptions.create(file=("a.wav", b"RIFF"), model=WHISPER_ALIAS, **kwargs)


class TestThroughTheSdk:
    """The SDK's own request path: parsing, streaming, and its exception classes."""

    def test_verbose_json(self):
        server = Server(200, body(ResponseFormat.VERBOSE_JSON, granularities=[Granularity.WORD])[0])
        result = transcribe(server, response_format="verbose_json", timestamp_granularities=["word"])
        assert isinstance(result, TranscriptionVerbose)
        assert result.words[0].word == "And"
        assert server.requests[0].url.path == "/openai/v1/audio/transcriptions"

    @pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
    def test_text_formats_come_back_as_strings(self, fmt):
        data, media = body(ResponseFormat(fmt))
        assert transcribe(Server(200, data, media), response_format=fmt) == data.decode()

    def test_streaming(self):
        server = Server(200, b"".join(stream_events(s.text for s in SEGMENTS)), "text/event-stream")
        events = list(transcribe(server, stream=True))
        assert events[-1].type == "transcript.text.done"
        assert "".join(e.delta for e in events[:-1]) == events[-1].text

    @pytest.mark.parametrize(
        ("error", "exception"),
        [
            (UnauthorizedError("wrong API key"), "AuthenticationError"),
            (InvalidRequestError("bad field"), "BadRequestError"),
            (BackendUnavailableError("cannot translate"), "UnprocessableEntityError"),
            (QueueFullError("queue full", retry_after_s=10), "RateLimitError"),
            (StoreUnavailableError("redis away"), "InternalServerError"),
            (ModelNotFoundError("no such model"), "NotFoundError"),
            (ResultTimeoutError("still running"), "InternalServerError"),
        ],
    )
    def test_errors_raise_the_sdks_own_classes(self, error, exception):
        status, data = error_response(error, param="file")
        with pytest.raises(getattr(openai, exception)) as caught:
            transcribe(Server(status, data))
        assert caught.value.status_code == error.status_code
        assert caught.value.code == error.code
        assert caught.value.param == "file"
        assert caught.value.body["message"] == error.detail

    def test_an_error_names_the_task_it_made(self):
        """A request that made a task (then timed out) says which, so the client can follow it."""
        status, data = error_response(ResultTimeoutError("still running"), task_id="t-1")
        with pytest.raises(openai.InternalServerError) as caught:
            transcribe(Server(status, data))
        assert caught.value.body["task_id"] == "t-1"
        assert caught.value.body["status_url"] == "/v1/status/t-1"
        assert "task_id" not in json.loads(error_response(ResultTimeoutError("x"))[1])["error"]

    def test_models(self):
        infos = [
            ModelInfo(
                backend_id=b,
                name=b,
                description="",
                capabilities=[],
                available=ok,
                default_variant="x",
                device="cpu",
                compute_type="int8",
                variants=[
                    ModelVariant(name="fast", model="small", default=True, available=True),
                    ModelVariant(name="large", model="/m/large", available=True),
                    ModelVariant(name="gone", model="/m/gone", available=False),
                ]
                if b == "whisper"
                else None,
            )
            for b, ok in (("whisper", True), ("pocketsphinx", True), ("chunkformer", False))
        ]
        listed = model_list(infos, created=1_700_000_000)
        models = Server(200, msgspec.json.encode(listed)).client().models.list()
        assert [m.id for m in models] == [
            "whisper",
            WHISPER_ALIAS,
            "whisper:fast",
            "whisper:large",
            "pocketsphinx",
        ]
        assert {m.owned_by for m in models} == {"maie"}


class TestModels:
    def test_resolve(self):
        backends = ["whisper", "pocketsphinx"]
        assert resolve_model(WHISPER_ALIAS, backends) == ("whisper", None)
        assert resolve_model("pocketsphinx", backends) == ("pocketsphinx", None)
        assert resolve_model("whisper:large", backends) == ("whisper", "large")
        for unknown in ("gpt-4o-transcribe", "whisper:", "nope:large"):
            with pytest.raises(ModelNotFoundError, match="does not exist") as caught:
                resolve_model(unknown, backends)
            assert caught.value.status_code == 404
            assert caught.value.extra["param"] == "model"
