"""What every LLM backend is: batches of chat requests in, text answers out.

A backend (``vllm_backend.py``, ``openai_backend.py``) loads one model, answers a batch of
:class:`LlmRequest` with one :class:`LlmReply` each (in order), and says what it is
(:meth:`LlmBackend.version_info`). Backends run requests of a batch concurrently where they can
(vLLM batches them on the GPU; the HTTP backend keeps a bounded number in flight).

Errors: a server that fails or times out after the backend's own retries raises
:class:`~maie.errors.LlmUnavailableError` (the stage is retried later); a refusal that retrying
cannot fix (unknown model, prompt longer than the context) raises
:class:`~maie.errors.LlmRequestError`; a model that cannot load raises
:class:`~maie.errors.ModelLoadError`. Answers themselves are returned as they are, truncated ones
included: judging them is the caller's job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import msgspec

from maie.pipeline.llm.generation import GenerationParams

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

    from maie.pipeline.llm.tokens import TokenCounter
    from maie.schemas import LlmVersion

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "ChatMessage",
    "LlmBackend",
    "LlmReply",
    "LlmRequest",
]

#: Tokens a chat template adds around each message (role markers, separators). Generous on purpose:
#: ChatML adds about 5, some templates more.
MESSAGE_OVERHEAD_TOKENS = 12


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of a conversation."""

    role: Literal["system", "user", "assistant"]
    content: str


class LlmRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One conversation to answer."""

    messages: tuple[ChatMessage, ...]
    #: Generation parameters, fully resolved (``max_tokens`` included).
    params: GenerationParams
    #: JSON Schema the answer is decoded under; ``None`` for free text.
    json_schema: dict[str, Any] | None = None
    #: Name of the schema (OpenAI's ``response_format`` requires one): letters, digits, ``_``, ``-``.
    schema_name: str = "answer"


class LlmReply(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to one request."""

    text: str
    #: ``stop`` when the model finished, ``length`` when it hit ``max_tokens``; as the library says.
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def truncated(self) -> bool:
        """Whether the answer was cut off at the token limit (and so must never be stored)."""
        return self.finish_reason == "length"


class LlmBackend(ABC):
    """An LLM behind ``load()`` / ``generate(batch)`` / ``unload()``."""

    #: ``vllm`` or ``openai``.
    backend_id: ClassVar[str]

    def __init__(self) -> None:
        # Set by load(): the context window, the token counter, the model's generation defaults.
        self._context: int | None = None
        self._counter: TokenCounter | None = None
        self._model_config = GenerationParams()

    @abstractmethod
    def load(self) -> None:
        """Load the model (or connect to the server and check it serves the model).

        Raises:
            ModelLoadError: with what to change, when the model cannot be used.
        """

    @abstractmethod
    def unload(self) -> None:
        """Free the model (GPU memory included). Safe to call when nothing is loaded."""

    @abstractmethod
    def generate(self, batch: Sequence[LlmRequest]) -> list[LlmReply]:
        """Answer every request of ``batch``, in order.

        Raises:
            LlmUnavailableError: the server failed or timed out after retries (transient).
            LlmRequestError: the request was refused for good.
        """

    @abstractmethod
    def version_info(self, task: str) -> LlmVersion:
        """What answers ``task`` (``enhancement`` or ``summary``): model, checkpoint, chat template.

        Decoding parameters are filled in by the caller, which resolves them.
        """

    @abstractmethod
    def cache_key(self) -> Hashable:
        """Identity of the loaded model: equal keys can share one loaded instance. Holds no secrets."""

    @property
    @abstractmethod
    def loaded(self) -> bool:
        """Whether ``load()`` has run and ``unload()`` has not."""

    @property
    def context_window(self) -> int:
        """Tokens a request (prompt and answer) may hold. Known once loaded."""
        if self._context is None:
            msg = "the context window is known only after load()"
            raise RuntimeError(msg)
        return self._context

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as this model counts them, or a safe over-estimate."""
        if self._counter is None:
            msg = "count_tokens() called before load()"
            raise RuntimeError(msg)
        return self._counter.count(text)

    def model_generation_config(self) -> GenerationParams:
        """The model's own defaults from its ``generation_config.json`` (empty when unknown)."""
        return self._model_config

    def pause(self) -> None:  # noqa: B027 - an optional hook: a no-op unless a backend can do better
        """Give accelerator memory back while staying loaded, where the library can (vLLM sleep).

        The next ``generate`` resumes. The default does nothing.
        """

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens a conversation takes as a prompt, template overhead included."""
        return sum(self.count_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages)
