"""Templated summaries (``summary``): one JSON object that validates against the template's schema.

The template's prompt is rendered with the whole transcript when it fits the context budget (and
``MAIE_LLM_SUMMARY_CHUNK_TOKENS``, when set); the answer is decoded under the schema, validated
with jsonschema, and its ``segment_ids`` checked against the transcript. An unusable answer is
asked again with the problem named, up to ``MAIE_LLM_SCHEMA_RETRIES`` times; if it is still
unusable the stage fails. A truncated answer (``finish_reason=length``) is never used.

A diarized transcript's lines show their speaker: each segment's text reaches the template as
``SPEAKER_00: text`` (or the speaker's name), so every template, old or new, sees who said what.

A longer transcript is summarised by map-reduce: each chunk of segments is summarised under the
same schema (the prompt gets ``part``/``parts``), then the partial summaries are merged with
MAIE's merge prompt, in as many rounds as the context requires, each merge validated likewise.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from maie.errors import LlmOutputError, LlmRequestError
from maie.pipeline.llm.answers import cite_only
from maie.pipeline.llm.asking import FEEDBACK_TOKENS, Question, Tally, ask
from maie.pipeline.llm.base import ChatMessage
from maie.pipeline.llm.chunking import chunk_segments
from maie.pipeline.llm.generation import GenerationParams, env_params, resolve_generation
from maie.pipeline.prompts import Prompt, Template
from maie.pipeline.stage import Stage
from maie.schemas import MapReduceInfo, Segment, SummaryArtifact

if TYPE_CHECKING:
    from collections.abc import Sequence

    from maie.config import LlmSettings
    from maie.pipeline.llm.asking import Outcome
    from maie.pipeline.llm.base import LlmBackend
    from maie.pipeline.llm.generation import ResolvedGeneration

__all__ = ["REDUCE_PROMPT", "SummarizeInput", "SummarizeOptions", "Summarizer", "spoken"]

log = structlog.get_logger(__name__)

#: MAIE's prompt that merges partial summaries.
REDUCE_PROMPT = Path(__file__).parent / "prompts" / "reduce.jinja"
#: Tokens a transcript line costs besides its text: ``[123] 1234.5-1240.2 `` and the newline.
SEGMENT_LINE_TOKENS = 12
#: Tokens a partial summary costs in the merge prompt besides its JSON: ``Part 12:`` and newlines.
PARTIAL_TOKENS = 8
#: Largest derived answer cap; a summary longer than this is rarely a summary.
MAX_DERIVED_TOKENS = 4096
#: Tokens kept free in every request for what counts cannot foresee.
SAFETY_TOKENS = 64


class SummarizeOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How summaries are budgeted and asked for."""

    #: Most transcript tokens per request; ``None``: as many as the context holds.
    chunk_tokens: int | None = None
    retries: int = 2
    #: ``MAIE_LLM_SUMMARY_*`` generation level.
    env: GenerationParams = msgspec.field(default_factory=GenerationParams)
    #: Caller overrides, above every other level.
    runtime: GenerationParams | None = None

    @classmethod
    def from_settings(cls, llm: LlmSettings, runtime: GenerationParams | None = None) -> SummarizeOptions:
        """Options from the ``MAIE_LLM_*`` settings."""
        return cls(
            chunk_tokens=llm.summary_chunk_tokens,
            retries=llm.schema_retries,
            env=env_params(llm, "summary"),
            runtime=runtime,
        )


class SummarizeInput(msgspec.Struct, frozen=True, kw_only=True):
    """The transcript (clean where enhancement ran) and the template to fill."""

    segments: list[Segment]
    template: Template
    language: str | None = None


def spoken(segments: Sequence[Segment]) -> list[Segment]:
    """The segments as transcript lines show them: text after its speaker (``SPEAKER_00: text``)."""
    return [
        msgspec.structs.replace(s, text=f"{s.speaker}: {s.text.strip()}") if s.speaker else s
        for s in segments
    ]


class Summarizer(Stage[SummarizeOptions, SummarizeInput, SummaryArtifact]):
    """Fills a template from a transcript with an LLM backend."""

    def __init__(self, options: SummarizeOptions, backend: LlmBackend) -> None:
        super().__init__(options)
        self.backend = backend

    def load(self) -> None:
        """Load the backend."""
        self.backend.load()

    def unload(self) -> None:
        """Unload the backend."""
        self.backend.unload()

    def process(self, data: SummarizeInput) -> SummaryArtifact:
        """Summarise ``data`` directly, or by map-reduce when it does not fit.

        Raises:
            LlmRequestError: the template's prompt alone does not fit the context, or the backend refused.
            LlmOutputError: an answer stayed unusable after retries.
            LlmUnavailableError: the backend failed (transient).
        """
        started = time.perf_counter()
        data = msgspec.structs.replace(data, segments=spoken(data.segments))
        backend, opts, template = self.backend, self.options, data.template
        resolved = resolve_generation(
            runtime=opts.runtime, env=opts.env, model=backend.model_generation_config()
        )
        if resolved.params.max_tokens is None:
            resolved = resolved.with_max_tokens(min(MAX_DERIVED_TOKENS, backend.context_window // 4))
        log.info(
            "llm.generation_resolved", task="summary", **resolved.params.as_dict(), sources=resolved.sources
        )
        budget = self._budget(resolved)
        tally = Tally()
        known = frozenset(s.id for s in data.segments)

        whole = self._prompt(data, data.segments, None, None)
        transcript_tokens = sum(backend.count_tokens(s.text) + SEGMENT_LINE_TOKENS for s in data.segments)
        fits = backend.prompt_tokens(whole) <= budget
        if fits and (opts.chunk_tokens is None or transcript_tokens <= opts.chunk_tokens):
            outcome = ask(
                backend,
                [self._question(whole, template, known)],
                resolved.params,
                retries=opts.retries,
                tally=tally,
            )
            summary, map_reduce = self._require(outcome[0], template, resolved), None
        else:
            summary, map_reduce = self._map_reduce(data, budget, resolved, tally, known)

        version = msgspec.structs.replace(
            backend.version_info("summary"),
            decoding_params=resolved.params.as_dict(),
            decoding_sources=resolved.sources,
            map_reduce=map_reduce,
        )
        elapsed = time.perf_counter() - started
        log.info(
            "summarize.finished",
            template_id=template.template_id,
            requests=tally.requests,
            retries=tally.retries,
            parts=map_reduce.parts if map_reduce else 1,
            processing_time_s=round(elapsed, 3),
        )
        return SummaryArtifact(
            summary=summary,
            template=template.version(),
            version=version,
            requests=tally.requests,
            retries=tally.retries,
            processing_time_s=elapsed,
        )

    def _budget(self, resolved: ResolvedGeneration) -> int:
        """Prompt tokens a request may take: the context less the answer cap and reserves."""
        context = self.backend.context_window
        max_tokens = resolved.params.max_tokens or 0
        budget = context - max_tokens - SAFETY_TOKENS - FEEDBACK_TOKENS
        if budget <= 0:
            raise LlmRequestError(
                f"MAIE_LLM_SUMMARY_MAX_TOKENS={max_tokens} leaves no room for a prompt in a context of "
                f"{context} tokens; lower it or use a longer context"
            )
        return budget

    def _prompt(
        self, data: SummarizeInput, segments: Sequence[Segment], part: int | None, parts: int | None
    ) -> list[ChatMessage]:
        text = data.template.render(segments=list(segments), language=data.language, part=part, parts=parts)
        return [ChatMessage(role="user", content=text)]

    def _question(self, messages: list[ChatMessage], template: Template, known: frozenset[int]) -> Question:
        """A question under the template's schema, citing only the ``known`` segments.

        The schema sent is bounded to ``known`` (a decoder held to it cannot cite another id); the
        answer is still validated against the template's own schema and checked against ``known``.
        """
        return Question(
            messages=tuple(messages),
            schema=cite_only(template.schema, known),
            schema_name=template.template_id,
            validator=template.validator(),
            known_ids=known,
        )

    def _map_reduce(
        self,
        data: SummarizeInput,
        budget: int,
        resolved: ResolvedGeneration,
        tally: Tally,
        known: frozenset[int],
    ) -> tuple[dict[str, Any], MapReduceInfo | None]:
        backend, template = self.backend, data.template
        overhead = backend.prompt_tokens(self._prompt(data, [], 1, 1))
        limit = budget - overhead
        if self.options.chunk_tokens is not None:
            limit = min(limit, self.options.chunk_tokens)
        if limit < 2 * SEGMENT_LINE_TOKENS:
            raise LlmRequestError(
                f"the context window ({backend.context_window} tokens) is too small for template "
                f"{template.template_id!r}: its prompt takes {overhead} tokens and the answer up to "
                f"{resolved.params.max_tokens}; use a longer context or lower MAIE_LLM_SUMMARY_MAX_TOKENS"
            )
        chunks = chunk_segments(data.segments, backend.count_tokens, limit, per_segment=SEGMENT_LINE_TOKENS)
        parts = len(chunks)
        log.info("summarize.map", template_id=template.template_id, parts=parts, chunk_tokens=limit)
        # A part's summary may cite only the segments of its part: the only ones its prompt shows.
        questions = [
            self._question(
                self._prompt(data, chunk.segments, index, parts),
                template,
                frozenset(s.id for s in chunk.segments),
            )
            for index, chunk in enumerate(chunks, start=1)
        ]
        outcomes = ask(backend, questions, resolved.params, retries=self.options.retries, tally=tally)
        partials = [self._require(o, template, resolved) for o in outcomes]
        if parts == 1:
            return partials[0], None
        reduce_prompt = Prompt.read(REDUCE_PROMPT)
        items = [json.dumps(p, ensure_ascii=False) for p in partials]
        rounds = 0
        while len(items) > 1:
            rounds += 1
            groups = self._groups(items, data, reduce_prompt, budget)
            if len(groups) == len(items):
                raise LlmRequestError(
                    "the partial summaries are too large to merge two at a time in a context of "
                    f"{backend.context_window} tokens; use a longer context or lower "
                    "MAIE_LLM_SUMMARY_MAX_TOKENS"
                )
            merging = [g for g in groups if len(g) > 1]
            log.info("summarize.reduce", round=rounds, inputs=len(items), merges=len(merging))
            merged = iter(
                ask(
                    backend,
                    [
                        self._question(self._merge_prompt(g, data, reduce_prompt), template, known)
                        for g in merging
                    ],
                    resolved.params,
                    retries=self.options.retries,
                    tally=tally,
                )
            )
            items = [
                g[0]
                if len(g) == 1
                else json.dumps(self._require(next(merged), template, resolved), ensure_ascii=False)
                for g in groups
            ]
        info = MapReduceInfo(parts=parts, reduce_rounds=rounds, reduce_prompt_sha256=reduce_prompt.sha256)
        summary: dict[str, Any] = json.loads(items[0])
        return summary, info

    def _merge_prompt(self, group: list[str], data: SummarizeInput, prompt: Prompt) -> list[ChatMessage]:
        template = data.template
        text = prompt.render(
            name=template.name,
            description=template.description,
            schema_json=json.dumps(template.schema, ensure_ascii=False),
            partials=group,
            language=data.language,
        )
        return [ChatMessage(role="user", content=text)]

    def _groups(self, items: list[str], data: SummarizeInput, prompt: Prompt, budget: int) -> list[list[str]]:
        """Consecutive items packed so each group's merge prompt fits ``budget``."""
        room = budget - self.backend.prompt_tokens(self._merge_prompt([], data, prompt))
        groups: list[list[str]] = []
        used = 0
        for item in items:
            cost = self.backend.count_tokens(item) + PARTIAL_TOKENS
            if groups and used + cost <= room:
                groups[-1].append(item)
                used += cost
            else:
                groups.append([item])
                used = cost
        return groups

    def _require(self, outcome: Outcome, template: Template, resolved: ResolvedGeneration) -> dict[str, Any]:
        """The outcome's summary, or the error that fails the task."""
        if outcome.ok:
            value: dict[str, Any] = outcome.value
            return value
        problem = outcome.problem
        if problem is not None and problem.truncated:
            raise LlmOutputError(
                f"the summary for template {template.template_id!r} was cut off at "
                f"max_tokens={resolved.params.max_tokens} in all {outcome.attempts} attempts; "
                "raise MAIE_LLM_SUMMARY_MAX_TOKENS (and MAIE_LLM_MAX_MODEL_LEN if needed)"
            )
        raise LlmOutputError(
            f"the model's summary for template {template.template_id!r} stayed unusable after "
            f"{outcome.attempts} attempts: {problem.problem if problem else 'unknown problem'}"
        )
