"""Judging answers: JSON, schema, truncation, citations."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from maie.pipeline.llm.answers import AnswerProblem, judge, parse_json, unknown_segment_ids
from maie.pipeline.llm.base import LlmReply

SCHEMA = {
    "type": "object",
    "required": ["title", "items"],
    "properties": {
        "title": {"type": "string"},
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"segment_ids": {"type": "array"}}},
        },
    },
}
VALIDATOR = Draft202012Validator(SCHEMA)


class TestParse:
    def test_plain_fenced_and_after_thinking(self):
        assert parse_json('{"a": 1}') == {"a": 1}
        assert parse_json('```json\n{"a": 1}\n```') == {"a": 1}
        assert parse_json('<think>hmm, {"b": 2}?</think>\n{"a": 1}') == {"a": 1}

    def test_not_json(self):
        with pytest.raises(AnswerProblem, match="not valid JSON"):
            parse_json('{"a": ')


class TestJudge:
    def test_valid(self):
        reply = LlmReply(text='{"title": "t", "items": [{"segment_ids": [1, 2]}]}', finish_reason="stop")
        assert judge(reply, VALIDATOR, {1, 2})["title"] == "t"

    def test_truncated_is_never_used_even_if_it_parses(self):
        reply = LlmReply(text='{"title": "t", "items": []}', finish_reason="length")
        with pytest.raises(AnswerProblem) as caught:
            judge(reply, VALIDATOR)
        assert caught.value.truncated

    def test_schema_violation_names_the_path(self):
        reply = LlmReply(text='{"title": 3}', finish_reason="stop")
        with pytest.raises(AnswerProblem) as caught:
            judge(reply, VALIDATOR)
        assert "at $.title: 3 is not of type 'string'" in caught.value.problem
        assert "at $: 'items' is a required property" in caught.value.problem

    def test_unknown_citations(self):
        reply = LlmReply(text='{"title": "t", "items": [{"segment_ids": [1, 99]}]}', finish_reason="stop")
        with pytest.raises(AnswerProblem, match=r"segment_ids \[99\]"):
            judge(reply, VALIDATOR, {1, 2})

    def test_nested_citations_found(self):
        value = {"a": [{"b": {"segment_ids": [5, True, 7]}}], "segment_ids": [1]}
        assert unknown_segment_ids(value, {1, 5}) == [7]
