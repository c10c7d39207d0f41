"""Transcript enhancement (``clean_transcript``): punctuation, casing and obvious slips, per segment.

The transcript is split on segment boundaries into chunks that fit the context (at most
``MAIE_LLM_ENHANCEMENT_CHUNK_TOKENS`` transcript tokens each); all chunks are sent as one batch,
which the backend runs concurrently. Each answer is decoded under a schema listing exactly the
chunk's segment ids, so cleaned text maps back onto segments and their times. Guards:

- an answer that is cut off, off-schema or out of order is asked again (``MAIE_LLM_SCHEMA_RETRIES``);
  a chunk still unusable after that keeps its raw text (counted in ``chunks_failed``); if no chunk
  comes back usable, the stage fails;
- a cleaned segment whose words drifted from what was said (letters-only similarity below
  ``MAIE_LLM_ENHANCEMENT_MIN_SIMILARITY``) keeps its raw text (counted in ``segments_reverted``).

The edit rate between raw and clean transcript is measured with rapidfuzz.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from jsonschema import Draft202012Validator

from maie.errors import LlmOutputError, LlmRequestError
from maie.pipeline.llm.asking import Question, Tally, ask
from maie.pipeline.llm.base import ChatMessage
from maie.pipeline.llm.chunking import Chunk, chunk_segments
from maie.pipeline.llm.edits import edit_rate, similarity, word_edit_rate
from maie.pipeline.llm.generation import GenerationParams, env_params, resolve_generation
from maie.pipeline.prompts import Prompt
from maie.pipeline.stage import Stage
from maie.schemas import EnhanceArtifact, EnhancementMetrics, Segment

if TYPE_CHECKING:
    from maie.config import LlmSettings
    from maie.pipeline.llm.asking import Outcome
    from maie.pipeline.llm.base import LlmBackend

__all__ = ["ENHANCE_PROMPT", "EnhanceInput", "EnhanceOptions", "Enhancer", "join_segments", "skipped"]

log = structlog.get_logger(__name__)

#: The enhancement prompt shipped with MAIE.
ENHANCE_PROMPT = Path(__file__).parent / "prompts" / "enhance.jinja"
#: Tokens a segment costs besides its text, in the prompt and again in the answer
#: (``{"id": 12, "text": ""}, ``).
PER_SEGMENT_TOKENS = 12
#: Answer tokens per transcript token: the cleaned text is about as long as the raw, plus escapes.
ANSWER_RATIO = 1.25
#: Tokens kept free in every request for what counts cannot foresee.
SAFETY_TOKENS = 64
#: Name of the enhancement schema in requests.
SCHEMA_NAME = "clean_transcript"
#: Languages written without spaces between words (segments are joined without one).
UNSPACED_LANGUAGES = frozenset({"zh", "ja", "yue", "th", "lo", "my", "km", "bo"})


class EnhanceOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How enhancement splits, asks and guards."""

    chunk_tokens: int = 1024
    min_similarity: float = 0.5
    retries: int = 2
    #: ``MAIE_LLM_ENHANCEMENT_*`` generation level.
    env: GenerationParams = msgspec.field(default_factory=GenerationParams)
    #: Caller overrides, above every other level.
    runtime: GenerationParams | None = None

    @classmethod
    def from_settings(cls, llm: LlmSettings, runtime: GenerationParams | None = None) -> EnhanceOptions:
        """Options from the ``MAIE_LLM_*`` settings."""
        return cls(
            chunk_tokens=llm.enhancement_chunk_tokens,
            min_similarity=llm.enhancement_min_similarity,
            retries=llm.schema_retries,
            env=env_params(llm, "enhancement"),
            runtime=runtime,
        )


class EnhanceInput(msgspec.Struct, frozen=True, kw_only=True):
    """The raw transcript."""

    segments: list[Segment]
    language: str | None = None


def join_segments(segments: list[Segment], language: str | None) -> str:
    """The text of ``segments`` as one transcript."""
    joiner = "" if language in UNSPACED_LANGUAGES else " "
    return joiner.join(s.text for s in segments if s.text)


def skipped(data: EnhanceInput, reason: str) -> EnhanceArtifact:
    """The artifact of an enhancement that did not run: the raw transcript, unchanged."""
    log.info("enhance.skipped", reason=reason)
    return EnhanceArtifact(
        text=join_segments(data.segments, data.language),
        segments=[msgspec.structs.replace(s, words=None) for s in data.segments],
        metrics=EnhancementMetrics(
            edit_rate=0.0, word_edit_rate=0.0, segments=len(data.segments), skipped=True, reason=reason
        ),
    )


def chunk_schema(ids: list[int]) -> dict[str, Any]:
    """The schema of one chunk's answer: exactly these segments, each with its cleaned text."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["segments"],
        "properties": {
            "segments": {
                "type": "array",
                "minItems": len(ids),
                "maxItems": len(ids),
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["id", "text"],
                    "properties": {"id": {"type": "integer", "enum": ids}, "text": {"type": "string"}},
                },
            }
        },
    }


class Enhancer(Stage[EnhanceOptions, EnhanceInput, EnhanceArtifact]):
    """Cleans a transcript with an LLM backend (loaded by the caller, or by ``load()``)."""

    def __init__(self, options: EnhanceOptions, backend: LlmBackend) -> None:
        super().__init__(options)
        self.backend = backend

    def load(self) -> None:
        """Load the backend."""
        self.backend.load()

    def unload(self) -> None:
        """Unload the backend."""
        self.backend.unload()

    def process(self, data: EnhanceInput) -> EnhanceArtifact:
        """Clean ``data`` chunk by chunk.

        Raises:
            LlmRequestError: the context is too small for the prompt, or the backend refused.
            LlmOutputError: no chunk came back usable.
            LlmUnavailableError: the backend failed (transient).
        """
        backend, opts = self.backend, self.options
        prompt = Prompt.read(ENHANCE_PROMPT)
        resolved = resolve_generation(
            runtime=opts.runtime, env=opts.env, model=backend.model_generation_config()
        )
        limit, max_tokens = self._budget(prompt, data.language, resolved.params.max_tokens)
        if resolved.params.max_tokens is None:
            resolved = resolved.with_max_tokens(max_tokens)
        log.info(
            "llm.generation_resolved",
            task="enhancement",
            **resolved.params.as_dict(),
            sources=resolved.sources,
        )

        chunks = chunk_segments(data.segments, backend.count_tokens, limit, per_segment=PER_SEGMENT_TOKENS)
        questions = [self._question(prompt, chunk, data.language) for chunk in chunks]
        tally = Tally()
        outcomes = ask(backend, questions, resolved.params, retries=opts.retries, tally=tally)
        failed = sum(not o.ok for o in outcomes)
        if chunks and failed == len(chunks):
            last = outcomes[-1].problem
            raise LlmOutputError(
                f"enhancement failed: no chunk of the transcript came back usable after "
                f"{opts.retries + 1} attempts (last problem: {last.problem if last else 'unknown'})"
            )
        cleaned, changed, reverted = self._assemble(data.segments, chunks, outcomes)
        raw_text = join_segments(data.segments, data.language)
        clean_text = join_segments(cleaned, data.language)
        metrics = EnhancementMetrics(
            edit_rate=round(edit_rate(raw_text, clean_text), 4),
            word_edit_rate=round(word_edit_rate(raw_text, clean_text), 4),
            segments=len(data.segments),
            segments_changed=changed,
            segments_reverted=reverted,
            chunks=len(chunks),
            chunks_failed=failed,
        )
        version = msgspec.structs.replace(
            backend.version_info("enhancement"),
            decoding_params=resolved.params.as_dict(),
            decoding_sources=resolved.sources,
            prompt_sha256=prompt.sha256,
        )
        log.info(
            "enhance.finished",
            chunks=len(chunks),
            chunks_failed=failed,
            requests=tally.requests,
            retries=tally.retries,
            edit_rate=metrics.edit_rate,
            segments_reverted=reverted,
        )
        return EnhanceArtifact(text=clean_text, segments=cleaned, metrics=metrics, version=version)

    def _budget(self, prompt: Prompt, language: str | None, max_tokens: int | None) -> tuple[int, int]:
        """Most transcript tokens per chunk, and the answer cap that goes with them."""
        backend = self.backend
        empty = prompt.render(language=language, segments_json="")
        overhead = backend.prompt_tokens([ChatMessage(role="user", content=empty)])
        room = backend.context_window - overhead - SAFETY_TOKENS
        limit = min(self.options.chunk_tokens, int(room / (1 + ANSWER_RATIO)))
        if max_tokens is not None:
            limit = min(limit, int(max_tokens / ANSWER_RATIO), room - max_tokens)
        if limit < 2 * PER_SEGMENT_TOKENS:
            raise LlmRequestError(
                f"the context window ({backend.context_window} tokens) is too small for enhancement: "
                f"its prompt takes {overhead} tokens and each chunk needs room for its answer; "
                "use a model with a longer context (MAIE_LLM_MAX_MODEL_LEN) or lower "
                "MAIE_LLM_ENHANCEMENT_MAX_TOKENS"
            )
        return limit, max_tokens or math.ceil(limit * ANSWER_RATIO) + SAFETY_TOKENS

    def _question(self, prompt: Prompt, chunk: Chunk, language: str | None) -> Question:
        ids = [s.id for s in chunk.segments]
        payload = {"segments": [{"id": s.id, "text": s.text} for s in chunk.segments]}
        text = prompt.render(language=language, segments_json=json.dumps(payload, ensure_ascii=False))
        schema = chunk_schema(ids)

        def in_order(value: Any) -> str | None:  # noqa: ANN401 - a schema-valid answer
            got = [item["id"] for item in value["segments"]]
            return None if got == ids else f"the segments must keep their ids in order {ids}, got {got}"

        return Question(
            messages=(ChatMessage(role="user", content=text),),
            schema=schema,
            schema_name=SCHEMA_NAME,
            validator=Draft202012Validator(schema),
            check=in_order,
        )

    def _assemble(
        self, segments: list[Segment], chunks: list[Chunk], outcomes: list[Outcome]
    ) -> tuple[list[Segment], int, int]:
        """Cleaned segments (raw text where a chunk failed or a segment drifted), changed, reverted."""
        pieces: dict[int, list[str]] = {}
        for chunk, outcome in zip(chunks, outcomes, strict=True):
            texts = (
                {item["id"]: item["text"].strip() for item in outcome.value["segments"]} if outcome.ok else {}
            )
            for segment in chunk.segments:
                pieces.setdefault(segment.id, []).append(texts.get(segment.id, segment.text))
        cleaned: list[Segment] = []
        changed = reverted = 0
        for segment in segments:
            text = " ".join(p for p in pieces.get(segment.id, [segment.text]) if p)
            if text != segment.text and similarity(segment.text, text) < self.options.min_similarity:
                log.warning(
                    "enhance.segment_reverted",
                    segment_id=segment.id,
                    similarity=round(similarity(segment.text, text), 3),
                )
                text = segment.text
                reverted += 1
            changed += text != segment.text
            cleaned.append(msgspec.structs.replace(segment, text=text, words=None))
        return cleaned, changed, reverted
