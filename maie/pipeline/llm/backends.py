"""The LLM backends MAIE knows, built from settings.

Adding a backend is one module defining an :class:`~maie.pipeline.llm.base.LlmBackend` (and its
options) plus one branch in :func:`create_llm_backend`; docs/llm.md walks through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from maie.errors import UnprocessableError
from maie.pipeline.llm.openai_backend import OpenAiBackend, OpenAiOptions
from maie.pipeline.llm.vllm_backend import VllmBackend, VllmOptions

if TYPE_CHECKING:
    from maie.config import Settings
    from maie.pipeline.llm.base import LlmBackend

__all__ = ["BACKENDS", "Task", "create_llm_backend"]

#: Backend ids accepted in MAIE_LLM_BACKEND besides ``none``.
BACKENDS = ("vllm", "openai")

Task = Literal["enhancement", "summary"]


def create_llm_backend(settings: Settings, task: Task, *, resident: bool = False) -> LlmBackend:
    """An unloaded backend for ``task`` (no I/O: call ``load()`` or hand it to the model cache).

    Args:
        settings: The settings; ``MAIE_LLM_BACKEND`` picks the backend.
        task: ``enhancement`` or ``summary``; picks the model.
        resident: Whether the worker keeps models loaded between tasks (vLLM may then sleep).

    Raises:
        UnprocessableError: if no LLM backend is configured.
    """
    llm = settings.llm
    model = llm.model_for(task)
    if llm.backend == "none" or model is None:
        raise UnprocessableError(
            f"the {task} stage needs an LLM backend and none is configured (MAIE_LLM_BACKEND=none)"
        )
    data_dir = settings.storage.data_dir
    if llm.backend == "openai":
        return OpenAiBackend(OpenAiOptions.from_settings(llm, model, data_dir))
    return VllmBackend(VllmOptions.from_settings(llm, model, data_dir, resident=resident))
