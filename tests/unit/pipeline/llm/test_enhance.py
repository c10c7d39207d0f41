"""Transcript enhancement against the LLM test server (a real HTTP server, a test double)."""

from __future__ import annotations

import json

import pytest

from maie.errors import LlmOutputError, LlmRequestError
from maie.pipeline.llm.enhance import EnhanceInput, EnhanceOptions, Enhancer, join_segments, skipped
from maie.pipeline.llm.generation import GenerationParams
from maie.schemas import Segment
from tests.fixtures.llm_answers import enhance_text
from tests.fixtures.llm_server import Fault

RAW = [
    "and so my fellow americans",
    "ask not what your country can do for you",
    "ask what you can do for your country",
    "thank you",
]


def segments(texts=RAW) -> list[Segment]:
    return [Segment(id=i, start=2.0 * i, end=2.0 * i + 2, text=t) for i, t in enumerate(texts, start=1)]


def run(backend, data, **options):
    return Enhancer(EnhanceOptions(**options), backend).process(data)


class TestEnhance:
    """Cleaned per segment, ids and times kept, measured."""

    def test_cleans_every_segment(self, llm_server, make_backend):
        artifact = run(make_backend(llm_server), EnhanceInput(segments=segments(), language="en"))
        assert [s.text for s in artifact.segments] == [enhance_text(t) for t in RAW]
        assert [(s.id, s.start, s.end) for s in artifact.segments] == [
            (s.id, s.start, s.end) for s in segments()
        ]
        assert artifact.text == " ".join(enhance_text(t) for t in RAW)
        metrics = artifact.metrics
        assert metrics.segments == metrics.segments_changed == 4
        assert metrics.chunks == 1
        assert 0 < metrics.edit_rate < 0.2
        assert metrics.word_edit_rate == pytest.approx(8 / 24, abs=1e-4)  # 4 capitalised, 4 with a full stop

    def test_request_lists_exactly_the_chunk_ids(self, llm_server, make_backend):
        run(make_backend(llm_server), EnhanceInput(segments=segments()))
        body = llm_server.requests[-1]
        schema = body["response_format"]["json_schema"]["schema"]
        assert body["response_format"]["json_schema"]["name"] == "clean_transcript"
        assert schema["properties"]["segments"]["items"]["properties"]["id"]["enum"] == [1, 2, 3, 4]
        assert (
            schema["properties"]["segments"]["minItems"] == schema["properties"]["segments"]["maxItems"] == 4
        )
        assert '"text": "ask not what your country can do for you"' in body["messages"][-1]["content"]

    def test_long_transcript_is_chunked_and_sent_concurrently(self, llm_server, make_backend):
        texts = [f"segment number {i} says something ordinary" for i in range(40)]
        backend = make_backend(llm_server, concurrency=4)
        llm_server.hang_s = 0.1
        llm_server.inject(Fault.HANG, times=None)
        artifact = run(backend, EnhanceInput(segments=segments(texts)), chunk_tokens=60)
        assert artifact.metrics.chunks == len(llm_server.requests) > 4
        assert llm_server.max_in_flight == 4
        assert [s.text for s in artifact.segments] == [enhance_text(t) for t in texts]
        for body in llm_server.requests:
            ids = body["response_format"]["json_schema"]["schema"]["properties"]["segments"]["items"][
                "properties"
            ]["id"]["enum"]
            sent = json.loads(body["messages"][-1]["content"].split("Segments:\n", 1)[1])
            assert [s["id"] for s in sent["segments"]] == ids

    def test_resolved_parameters_are_sent_and_recorded(self, llm_server, make_backend):
        artifact = run(
            make_backend(llm_server),
            EnhanceInput(segments=segments()),
            env=GenerationParams(temperature=0.0),
            runtime=GenerationParams(top_p=0.5),
        )
        body = llm_server.requests[-1]
        assert (body["temperature"], body["top_p"], body["top_k"]) == (0.0, 0.5, 0)
        version = artifact.version
        assert version.task == "enhancement"
        assert version.decoding_params["temperature"] == 0.0
        assert version.decoding_sources["top_p"] == "runtime"
        assert version.decoding_sources["max_tokens"] == "derived"
        assert version.decoding_params["max_tokens"] == body["max_tokens"]
        assert version.prompt_sha256 is not None
        assert len(version.prompt_sha256) == 64
        assert version.structured_output.startswith("json_schema")

    def test_invalid_answer_is_asked_again(self, llm_server, make_backend):
        llm_server.inject(Fault.INVALID_JSON)
        artifact = run(make_backend(llm_server), EnhanceInput(segments=segments()), retries=1)
        assert len(llm_server.requests) == 2
        assert "not valid JSON" in llm_server.requests[-1]["messages"][-1]["content"]
        assert artifact.metrics.chunks_failed == 0
        assert artifact.segments[0].text == enhance_text(RAW[0])

    def test_chunk_still_unusable_keeps_its_raw_text(self, llm_server, make_backend):
        texts = [f"part {i} of the talk" for i in range(6)]
        backend = make_backend(llm_server)
        # Three chunks of two segments; every answer for the first one is cut off.
        llm_server.inject(Fault.LENGTH, times=None, containing="part 0 of the talk")
        artifact = run(backend, EnhanceInput(segments=segments(texts)), chunk_tokens=45, retries=1)
        assert (artifact.metrics.chunks, artifact.metrics.chunks_failed) == (3, 1)
        assert len(llm_server.requests) == 4, "three chunks, the first asked twice"
        assert [s.text for s in artifact.segments] == texts[:2] + [enhance_text(t) for t in texts[2:]]
        assert artifact.metrics.segments_changed == 4

    def test_nothing_usable_fails(self, llm_server, make_backend):
        llm_server.inject(Fault.SCHEMA_VIOLATION, times=None)
        with pytest.raises(LlmOutputError, match="no chunk of the transcript came back usable"):
            run(make_backend(llm_server), EnhanceInput(segments=segments()), retries=1)

    def test_drifted_segment_keeps_raw_text(self, llm_server, make_backend, monkeypatch):
        """A model that rewrites what was said is not trusted for that segment."""
        import tests.fixtures.llm_answers as answers

        monkeypatch.setattr(
            answers, "enhance_text", lambda text: "completely different words" if "thank" in text else text
        )
        artifact = run(make_backend(llm_server), EnhanceInput(segments=segments()))
        assert artifact.segments[-1].text == "thank you"
        assert artifact.metrics.segments_reverted == 1

    def test_context_too_small(self, start_llm_server, make_backend):
        server = start_llm_server(max_model_len=400)
        with pytest.raises(LlmRequestError, match="too small for enhancement"):
            run(make_backend(server), EnhanceInput(segments=segments()))

    def test_empty_transcript(self, llm_server, make_backend):
        artifact = run(make_backend(llm_server), EnhanceInput(segments=[]))
        assert artifact.text == ""
        assert artifact.metrics.chunks == 0
        assert llm_server.requests == []


class TestSkipped:
    def test_raw_text_and_zero_edit_rate(self):
        artifact = skipped(EnhanceInput(segments=segments(), language="en"), "punctuates itself")
        assert artifact.text == join_segments(segments(), "en")
        assert artifact.metrics.skipped
        assert artifact.metrics.edit_rate == 0.0
        assert artifact.version is None

    def test_unspaced_languages_join_without_spaces(self):
        assert join_segments(segments(["我们", "发布"]), "zh") == "我们发布"
