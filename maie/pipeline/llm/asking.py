"""Asking structured questions: send a batch, judge each answer, ask again what was unusable.

Each round sends every open question in one batch (the backend runs them concurrently). An answer
that is cut off, not JSON, off-schema or cites unknown segments is asked again with the problem
spelled out (and the bad answer quoted where the context has room), up to ``retries`` times. What
is still unusable after that is returned as such; the caller decides whether that fails the task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from maie.pipeline.llm.answers import AnswerProblem, judge
from maie.pipeline.llm.base import ChatMessage, LlmRequest

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from jsonschema import Draft202012Validator

    from maie.pipeline.llm.base import LlmBackend, LlmReply
    from maie.pipeline.llm.generation import GenerationParams

__all__ = ["Outcome", "Question", "Tally", "ask"]

log = structlog.get_logger(__name__)

#: Tokens kept free for the note that asks again.
FEEDBACK_TOKENS = 160


@dataclass(frozen=True, kw_only=True)
class Question:
    """One request whose answer must validate against ``schema``."""

    messages: tuple[ChatMessage, ...]
    schema: dict[str, Any]
    schema_name: str
    validator: Draft202012Validator
    #: Segment ids the answer may cite; ``None`` skips the check.
    known_ids: frozenset[int] | None = None
    #: Further check of a schema-valid answer: returns what is wrong with it, or ``None``.
    check: Callable[[Any], str | None] | None = None


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The usable answer to a question, or the last problem with it."""

    value: Any = None
    problem: AnswerProblem | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        """Whether a usable answer came back."""
        return self.problem is None


@dataclass(kw_only=True)
class Tally:
    """Requests sent and answers refused, across calls."""

    requests: int = 0
    retries: int = 0
    problems: list[str] = field(default_factory=list)


def ask(
    backend: LlmBackend,
    questions: Sequence[Question],
    params: GenerationParams,
    *,
    retries: int,
    tally: Tally | None = None,
) -> list[Outcome]:
    """Ask every question, re-asking unusable answers up to ``retries`` times.

    Args:
        backend: A loaded backend.
        questions: What to ask.
        params: Resolved generation parameters (``max_tokens`` set).
        retries: Extra attempts per question after an unusable answer.
        tally: Counters to add this call's requests and refusals to.

    Returns:
        One outcome per question, in order.
    """
    tally = tally if tally is not None else Tally()
    outcomes = [Outcome() for _ in questions]
    conversations = [q.messages for q in questions]
    pending = list(range(len(questions)))
    for attempt in range(1, retries + 2):
        if not pending:
            break
        batch = [
            LlmRequest(
                messages=conversations[i],
                params=params,
                json_schema=questions[i].schema,
                schema_name=questions[i].schema_name,
            )
            for i in pending
        ]
        replies = backend.generate(batch)
        tally.requests += len(batch)
        still: list[int] = []
        for index, reply in zip(pending, replies, strict=True):
            question = questions[index]
            try:
                value = judge(reply, question.validator, question.known_ids)
                if question.check is not None and (wrong := question.check(value)):
                    raise AnswerProblem(wrong)  # noqa: TRY301 - one path for every kind of refusal
            except AnswerProblem as problem:
                log.warning(
                    "llm.answer_refused",
                    schema=question.schema_name,
                    attempt=attempt,
                    problem=problem.problem,
                    finish_reason=reply.finish_reason,
                )
                tally.problems.append(problem.problem)
                outcomes[index] = Outcome(problem=problem, attempts=attempt)
                conversations[index] = _again(backend, question, reply, problem, params)
                still.append(index)
            else:
                outcomes[index] = Outcome(value=value, attempts=attempt)
        if still and attempt <= retries:
            tally.retries += len(still)
        pending = still
    return outcomes


def _again(
    backend: LlmBackend,
    question: Question,
    reply: LlmReply,
    problem: AnswerProblem,
    params: GenerationParams,
) -> tuple[ChatMessage, ...]:
    """The conversation that asks ``question`` again, naming what was wrong."""
    if problem.truncated:
        note = (
            "Your previous answer was cut off at the token limit. Answer again with one complete "
            "JSON object that validates against the schema; keep every text field brief."
        )
        return (*question.messages, ChatMessage(role="user", content=note))
    note = (
        f"That answer cannot be used: {problem.problem}. Answer again with only one JSON object "
        "that validates against the schema."
    )
    quoted = (
        *question.messages,
        ChatMessage(role="assistant", content=reply.text),
        ChatMessage(role="user", content=note),
    )
    budget = backend.context_window - (params.max_tokens or 0) - FEEDBACK_TOKENS
    if backend.prompt_tokens(quoted) <= budget:
        return quoted
    return (*question.messages, ChatMessage(role="user", content=note))
