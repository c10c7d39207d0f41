"""Judging structured answers: parse the JSON, validate it against the schema, check references.

Backends decode under the schema, but a server that ignores ``response_format``, a model that
wraps its answer in a code fence or runs out of tokens, or a schema feature the decoder does not
enforce can still yield an unusable answer. Every answer is therefore parsed and validated here
with jsonschema, and each problem is described in words the model can act on when it is asked
again.
"""

from __future__ import annotations

import copy
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

    from jsonschema import Draft202012Validator

    from maie.pipeline.llm.base import LlmReply

__all__ = [
    "MAX_PROBLEMS",
    "REFERENCE_KEY",
    "AnswerProblem",
    "cite_only",
    "judge",
    "parse_json",
    "schema_problems",
    "unknown_segment_ids",
]

#: Schema problems quoted back to the model at most; more would only drown the first.
MAX_PROBLEMS = 5
#: Arrays under this key hold ids of transcript segments and are checked against the transcript.
REFERENCE_KEY = "segment_ids"
#: A leading reasoning block some models emit even under a schema.
_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)
#: A Markdown code fence around the whole answer.
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*)\n\s*```\s*$", re.DOTALL)


class AnswerProblem(Exception):  # noqa: N818 - a verdict on an answer, not a failure of MAIE
    """Why an answer cannot be used, phrased for the model (``truncated`` when it ran out of tokens)."""

    def __init__(self, problem: str, *, truncated: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.truncated = truncated


def parse_json(text: str) -> Any:  # noqa: ANN401 - any JSON value
    """Parse an answer as JSON, after dropping a leading ``<think>`` block and a code fence.

    Raises:
        AnswerProblem: if it is not JSON.
    """
    cleaned = _THINK.sub("", text, count=1)
    fenced = _FENCE.match(cleaned)
    if fenced:
        cleaned = fenced.group(1)
    try:
        return json.loads(cleaned)
    except ValueError as exc:
        raise AnswerProblem(f"the answer is not valid JSON ({exc})") from exc


def schema_problems(validator: Draft202012Validator, value: Any) -> list[str]:  # noqa: ANN401
    """The first :data:`MAX_PROBLEMS` schema violations of ``value``, each with its JSON path."""
    errors = sorted(
        validator.iter_errors(value), key=lambda e: (len(e.absolute_path), list(map(str, e.path)))
    )
    return [f"at {error.json_path}: {error.message}" for error in errors[:MAX_PROBLEMS]]


def unknown_segment_ids(value: Any, known: Collection[int]) -> list[int]:  # noqa: ANN401
    """Ids in ``segment_ids`` arrays anywhere in ``value`` that are not transcript segments."""
    return sorted({i for i in _references(value) if i not in known})


def cite_only(schema: dict[str, Any], ids: Collection[int]) -> dict[str, Any]:
    """``schema`` with the items of every ``segment_ids`` array limited to ``ids``.

    Templates say only that an id is an integer (often ``minimum: 0``, while ids start at 1), so
    a decoder held to the schema could emit an id the check of the answer then refuses. The
    request's schema therefore names the ids the prompt shows: a ``minimum``/``maximum`` when
    they are consecutive (cheap for grammar compilers), else an ``enum``. With no ids the schema is
    left as it is. ``schema`` is not changed.
    """
    if not ids:
        return schema
    ordered = sorted(set(ids))
    consecutive = ordered[-1] - ordered[0] + 1 == len(ordered)
    bound: dict[str, Any] = (
        {"type": "integer", "minimum": ordered[0], "maximum": ordered[-1]}
        if consecutive
        else {"type": "integer", "enum": ordered}
    )
    bounded = copy.deepcopy(schema)
    for found in list(_reference_schemas(bounded)):
        items = dict(bound)
        if isinstance(found.get("items"), dict) and "description" in found["items"]:
            items["description"] = found["items"]["description"]
        found["items"] = items
    return bounded


def _reference_schemas(node: Any) -> Iterator[dict[str, Any]]:  # noqa: ANN401
    """Every array schema under a ``segment_ids`` property, anywhere in a schema."""
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            found = properties.get(REFERENCE_KEY)
            if isinstance(found, dict) and found.get("type") == "array":
                yield found
        for value in node.values():
            yield from _reference_schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _reference_schemas(value)


def _references(value: Any) -> Iterator[int]:  # noqa: ANN401
    if isinstance(value, dict):
        for key, item in value.items():
            if key == REFERENCE_KEY and isinstance(item, list):
                yield from (i for i in item if isinstance(i, int) and not isinstance(i, bool))
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def judge(
    reply: LlmReply,
    validator: Draft202012Validator,
    known_ids: Collection[int] | None = None,
) -> Any:  # noqa: ANN401
    """The answer of ``reply`` if it is complete, valid JSON, schema-valid and cites real segments.

    Args:
        reply: The backend's answer.
        validator: Validator of the schema the answer must follow.
        known_ids: Segment ids the answer may cite; ``None`` skips the check.

    Returns:
        The parsed answer.

    Raises:
        AnswerProblem: describing the first thing wrong with it.
    """
    if reply.truncated:
        raise AnswerProblem(
            "the answer was cut off at the token limit before it was complete", truncated=True
        )
    value = parse_json(reply.text)
    problems = schema_problems(validator, value)
    if problems:
        raise AnswerProblem("the answer does not follow the JSON Schema: " + "; ".join(problems))
    if known_ids is not None and (unknown := unknown_segment_ids(value, known_ids)):
        raise AnswerProblem(
            f"segment_ids {unknown} are not ids of transcript segments; cite only the [id] numbers shown"
        )
    return value
