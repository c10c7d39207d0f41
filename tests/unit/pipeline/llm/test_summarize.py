"""Templated summaries against the LLM test server (a real HTTP server, a test double)."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from maie.errors import LlmOutputError, LlmRequestError
from maie.pipeline.llm.answers import cite_only, unknown_segment_ids
from maie.pipeline.llm.generation import GenerationParams
from maie.pipeline.llm.summarize import SummarizeInput, SummarizeOptions, Summarizer
from maie.pipeline.prompts import TemplateCatalog, default_templates_dir
from maie.schemas import Segment
from tests.fixtures.llm_server import Fault

TEMPLATES = TemplateCatalog(default_templates_dir())


def transcript(n: int = 4) -> list[Segment]:
    lines = [
        "we agreed to ship on friday",
        "anna will write the release notes",
        "is the budget approved",
        "no idea yet",
    ]
    return [
        Segment(id=i + 1, start=3.0 * i, end=3.0 * i + 3, text=lines[i % 4] + (f" item {i}" if n > 4 else ""))
        for i in range(n)
    ]


def summarize(backend, segments, template_id="meeting_notes_v1", **options):
    data = SummarizeInput(segments=segments, template=TEMPLATES.get(template_id), language="en")
    return Summarizer(SummarizeOptions(**options), backend).process(data)


def assert_valid(artifact, template_id, segments):
    schema = TEMPLATES.get(template_id).schema
    Draft202012Validator(schema).validate(artifact.summary)
    assert unknown_segment_ids(artifact.summary, {s.id for s in segments}) == []


class TestDirect:
    """A transcript that fits: one request, decoded under the schema, validated."""

    @pytest.mark.parametrize("template_id", ["meeting_notes_v1", "interview_notes_v1", "lecture_notes_v1"])
    def test_every_template_validates(self, llm_server, make_backend, template_id):
        segments = transcript()
        artifact = summarize(make_backend(llm_server), segments, template_id)
        assert_valid(artifact, template_id, segments)
        assert artifact.requests == 1
        body = llm_server.requests[-1]
        assert body["response_format"]["json_schema"]["name"] == template_id
        sent = body["response_format"]["json_schema"]["schema"]
        assert sent == cite_only(TEMPLATES.get(template_id).schema, {s.id for s in segments})
        assert "[2] 3.0-6.0 anna will write the release notes" in body["messages"][0]["content"]

    def test_versions(self, llm_server, make_backend):
        artifact = summarize(
            make_backend(llm_server), transcript(), env=GenerationParams(temperature=0.2, max_tokens=700)
        )
        template = TEMPLATES.get("meeting_notes_v1")
        assert artifact.template.schema_sha256 == template.schema_sha256
        assert artifact.template.prompt_sha256 == template.prompt_sha256
        version = artifact.version
        assert (version.name, version.task, version.map_reduce) == ("openai", "summary", None)
        assert version.decoding_params["temperature"] == 0.2
        assert version.decoding_params["max_tokens"] == 700 == llm_server.requests[-1]["max_tokens"]
        assert version.decoding_sources["max_tokens"] == "env"

    def test_empty_transcript_still_validates(self, llm_server, make_backend):
        artifact = summarize(make_backend(llm_server), [])
        assert_valid(artifact, "meeting_notes_v1", [])
        assert artifact.summary["decisions"] == []


class TestRetries:
    """Unusable answers are asked again with the problem; nothing invalid or truncated is returned."""

    @pytest.mark.parametrize(
        ("fault", "named"),
        [
            (Fault.INVALID_JSON, "not valid JSON"),
            (Fault.SCHEMA_VIOLATION, "does not follow the JSON Schema"),
            (Fault.UNKNOWN_IDS, "are not ids of transcript segments"),
            (Fault.LENGTH, "cut off at the token limit"),
        ],
    )
    def test_one_bad_answer_then_a_good_one(self, llm_server, make_backend, fault, named):
        llm_server.inject(fault)
        segments = transcript()
        artifact = summarize(make_backend(llm_server), segments, retries=2)
        assert_valid(artifact, "meeting_notes_v1", segments)
        assert (artifact.requests, artifact.retries) == (2, 1)
        again = llm_server.requests[-1]["messages"]
        assert named in again[-1]["content"]
        assert again[0] == llm_server.requests[0]["messages"][0], "the original prompt is kept"

    def test_bad_answer_is_quoted_back(self, llm_server, make_backend):
        llm_server.inject(Fault.SCHEMA_VIOLATION)
        summarize(make_backend(llm_server), transcript(), retries=1)
        roles = [m["role"] for m in llm_server.requests[-1]["messages"]]
        assert roles == ["user", "assistant", "user"]

    def test_always_invalid_fails_clearly(self, llm_server, make_backend):
        llm_server.inject(Fault.SCHEMA_VIOLATION, times=None)
        with pytest.raises(LlmOutputError, match=r"stayed unusable after 3 attempts.*JSON Schema"):
            summarize(make_backend(llm_server), transcript(), retries=2)
        assert len(llm_server.requests) == 3

    def test_always_truncated_fails_and_says_which_limit(self, llm_server, make_backend):
        llm_server.inject(Fault.LENGTH, times=None)
        with pytest.raises(
            LlmOutputError, match=r"cut off at max_tokens=\d+ in all 2 attempts.*MAIE_LLM_SUMMARY_MAX_TOKENS"
        ):
            summarize(make_backend(llm_server), transcript(), retries=1)

    def test_real_truncation_by_max_tokens(self, llm_server, make_backend):
        """Not an injected fault: the server cuts an answer longer than max_tokens."""
        with pytest.raises(LlmOutputError, match=r"cut off at max_tokens=20"):
            summarize(make_backend(llm_server), transcript(), env=GenerationParams(max_tokens=20), retries=0)


def id_bounds(schema) -> list[dict]:
    """The items schema of every ``segment_ids`` array in ``schema``."""
    found = []
    if isinstance(schema, dict):
        ids = schema.get("properties", {}).get("segment_ids")
        if ids is not None:
            found.append(ids["items"])
        for value in schema.values():
            found += id_bounds(value)
    elif isinstance(schema, list):
        for value in schema:
            found += id_bounds(value)
    return found


class TestCitableIds:
    """The schema sent lets a decoder cite only the segments its prompt shows (ids start at 1)."""

    def test_decoder_held_to_the_schema_cites_a_real_segment(self, llm_server, make_backend):
        """The double cites the lowest id the sent schema allows: 0 under the template's own schema."""
        llm_server.inject(Fault.LOWEST_IDS, times=None)
        segments = transcript()
        artifact = summarize(make_backend(llm_server), segments, retries=1)
        assert_valid(artifact, "meeting_notes_v1", segments)
        assert artifact.retries == 0
        assert artifact.summary["decisions"][0]["segment_ids"] == [1]

    def test_every_template_bounds_its_ids(self, llm_server, make_backend):
        for template_id in ("meeting_notes_v1", "interview_notes_v1", "lecture_notes_v1"):
            summarize(make_backend(llm_server), transcript(), template_id)
            bounds = id_bounds(llm_server.requests[-1]["response_format"]["json_schema"]["schema"])
            assert bounds, template_id
            assert all((b["minimum"], b["maximum"]) == (1, 4) for b in bounds), bounds

    def test_each_part_cites_only_its_own_segments(self, llm_server, make_backend):
        segments = transcript(24)
        llm_server.inject(Fault.LOWEST_IDS, times=None)
        artifact = summarize(make_backend(llm_server), segments, chunk_tokens=120, retries=0)
        assert_valid(artifact, "meeting_notes_v1", segments)
        parts = [r for r in llm_server.requests if "of a longer meeting" in r["messages"][0]["content"]]
        assert len(parts) >= 3
        for request in parts:
            shown = [
                int(line[1 : line.index("]")])
                for line in request["messages"][0]["content"].splitlines()
                if line.startswith("[")
            ]
            bounds = id_bounds(request["response_format"]["json_schema"]["schema"])
            assert all((b["minimum"], b["maximum"]) == (min(shown), max(shown)) for b in bounds)

    def test_ids_with_gaps_are_listed(self):
        schema = TEMPLATES.get("meeting_notes_v1").schema
        bounds = id_bounds(cite_only(schema, {1, 2, 5}))
        assert bounds
        assert all(b == {"type": "integer", "enum": [1, 2, 5]} for b in bounds), bounds
        assert id_bounds(schema)[0]["minimum"] == 0, "the template's own schema is left as it was"
        assert cite_only(schema, set()) == schema


class TestMapReduce:
    """Transcripts over the budget are summarised in parts and merged, every step validated."""

    def test_chunk_budget_forces_parts(self, llm_server, make_backend):
        segments = transcript(24)
        artifact = summarize(make_backend(llm_server), segments, chunk_tokens=120)
        assert_valid(artifact, "meeting_notes_v1", segments)
        info = artifact.version.map_reduce
        assert info is not None
        assert info.parts >= 3
        assert info.reduce_rounds == 1
        assert len(info.reduce_prompt_sha256) == 64
        prompts = [r["messages"][0]["content"] for r in llm_server.requests]
        maps = [p for p in prompts if f"of {info.parts} of a longer meeting" in p]
        merges = [p for p in prompts if p.startswith("You are merging notes")]
        assert len(maps) == info.parts
        assert len(merges) == 1
        assert artifact.requests == info.parts + 1
        # Every segment went to exactly one part.
        sent = [line for p in maps for line in p.splitlines() if line.startswith("[")]
        assert len(sent) == len(segments)
        # The merge saw every part's notes, and the final notes cite segments of several parts.
        assert merges[0].count("Part ") == info.parts

    def test_small_context_merges_in_rounds(self, start_llm_server, make_backend):
        server = start_llm_server(max_model_len=3600)
        segments = transcript(200)
        artifact = summarize(make_backend(server), segments)
        assert_valid(artifact, "meeting_notes_v1", segments)
        info = artifact.version.map_reduce
        assert info is not None
        assert info.parts >= 4
        assert info.reduce_rounds >= 2
        for body in server.requests:
            assert body["max_tokens"] == 900  # a quarter of the context, derived

    def test_context_too_small_for_the_template(self, start_llm_server, make_backend):
        server = start_llm_server(max_model_len=1200)
        with pytest.raises(LlmRequestError, match="too small for template 'meeting_notes_v1'"):
            summarize(make_backend(server), transcript())
        assert server.requests == []

    def test_part_fault_is_retried_within_the_part(self, llm_server, make_backend):
        segments = transcript(24)
        llm_server.inject(Fault.INVALID_JSON, containing="item 0")
        artifact = summarize(make_backend(llm_server), segments, chunk_tokens=120)
        assert_valid(artifact, "meeting_notes_v1", segments)
        assert artifact.retries == 1
        assert json.dumps(artifact.summary)
