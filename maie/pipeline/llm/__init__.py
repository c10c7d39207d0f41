"""LLM stages: transcript enhancement and templated summaries, over vLLM or an OpenAI-compatible server.

Typical use from a worker::

    from maie.pipeline.llm import Enhancer, EnhanceInput, EnhanceOptions, create_llm_backend

    backend = create_llm_backend(settings, "enhancement")
    with Enhancer(EnhanceOptions.from_settings(settings.llm), backend) as stage:
        artifact = stage.process(EnhanceInput(segments=asr.segments, language=asr.language))

Backends import their heavy libraries (vLLM) in ``load()``, so importing this package stays cheap.
"""

from __future__ import annotations

from maie.pipeline.llm.backends import BACKENDS, create_llm_backend
from maie.pipeline.llm.base import ChatMessage, LlmBackend, LlmReply, LlmRequest
from maie.pipeline.llm.enhance import EnhanceInput, EnhanceOptions, Enhancer
from maie.pipeline.llm.generation import GenerationParams, ResolvedGeneration, resolve_generation
from maie.pipeline.llm.openai_backend import OpenAiBackend, OpenAiOptions
from maie.pipeline.llm.summarize import SummarizeInput, SummarizeOptions, Summarizer
from maie.pipeline.llm.vllm_backend import VllmBackend, VllmOptions

__all__ = [
    "BACKENDS",
    "ChatMessage",
    "EnhanceInput",
    "EnhanceOptions",
    "Enhancer",
    "GenerationParams",
    "LlmBackend",
    "LlmReply",
    "LlmRequest",
    "OpenAiBackend",
    "OpenAiOptions",
    "ResolvedGeneration",
    "SummarizeInput",
    "SummarizeOptions",
    "Summarizer",
    "VllmBackend",
    "VllmOptions",
    "create_llm_backend",
    "resolve_generation",
]
