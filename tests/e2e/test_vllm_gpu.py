"""The vllm backend on real vLLM with a tiny random model: needs CUDA, vLLM, torch and transformers.

Skipped wherever one of them is missing (the default install has none of them). Checks that
JSON-Schema structured output from real vLLM validates, through the backend and through the
summary stage, that a resident engine sleeps and wakes, and that unload() gives the GPU memory back.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
from jsonschema import Draft202012Validator

from maie.pipeline.llm.base import ChatMessage, LlmRequest
from maie.pipeline.llm.generation import GenerationParams
from maie.pipeline.llm.summarize import SummarizeInput, SummarizeOptions, Summarizer
from maie.pipeline.llm.vllm_backend import VllmBackend, VllmOptions
from maie.pipeline.prompts import TemplateCatalog
from maie.schemas import Segment
from tests.fixtures.tiny_llm import build_tiny_llm

pytestmark = pytest.mark.gpu

#: Every string and number bounded, so even a random model's answer ends well within max_tokens.
BOUNDED = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "count", "done", "segment_ids"],
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 12},
        "count": {"type": "integer", "minimum": 0, "maximum": 9},
        "done": {"type": "boolean"},
        "segment_ids": {"type": "array", "maxItems": 2, "items": {"type": "integer", "enum": [1, 2]}},
    },
}


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    for module in ("vllm", "torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (GPU hosts: uv sync --extra vllm)")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return build_tiny_llm(tmp_path_factory.mktemp("tiny-llm"))


def options(model, tmp_path, **overrides):
    values = {
        "model": str(model),
        "data_dir": tmp_path,
        "max_model_len": 2048,
        "gpu_memory_utilization": 0.2,
        "chat_template": "qwen3_nonthinking",
    }
    values.update(overrides)
    return VllmOptions(**values)


def test_structured_output_validates_and_memory_returns(tiny_llm, tmp_path, record_property):
    import torch

    free_before, _ = torch.cuda.mem_get_info()
    backend = VllmBackend(options(tiny_llm, tmp_path))
    backend.load()
    free_loaded, _ = torch.cuda.mem_get_info()
    params = GenerationParams(temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0, max_tokens=200)
    batch = [
        LlmRequest(
            messages=(ChatMessage(role="user", content=f"Notes of segment {i}, as JSON."),),
            params=params,
            json_schema=BOUNDED,
            schema_name="bounded",
        )
        for i in range(8)
    ]
    replies = backend.generate(batch)
    assert [r.finish_reason for r in replies] == ["stop"] * 8
    for reply in replies:
        Draft202012Validator(BOUNDED).validate(json.loads(reply.text))
    assert len(backend.version_info("summary").checkpoint_hash) == 64
    backend.unload()
    free_after, _ = torch.cuda.mem_get_info()
    record_property(
        "gpu_free_mib", {"before": free_before >> 20, "loaded": free_loaded >> 20, "after": free_after >> 20}
    )
    assert free_loaded < free_before
    assert free_after >= free_before - (free_before - free_loaded) * 0.1, "unload gave the memory back"


def test_summary_stage_on_real_vllm(tiny_llm, tmp_path):
    (tmp_path / "templates" / "prompts").mkdir(parents=True)
    (tmp_path / "templates" / "bounded_v1.json").write_text(json.dumps(BOUNDED))
    (tmp_path / "templates" / "prompts" / "bounded_v1.jinja").write_text(
        "Notes as JSON:\n{% for s in segments %}[{{ s.id }}] {{ s.text }}\n{% endfor %}"
    )
    template = TemplateCatalog(tmp_path / "templates").get("bounded_v1")
    backend = VllmBackend(options(tiny_llm, tmp_path, sleep_when_idle=True))
    backend.load()
    segments = [
        Segment(id=1, start=0, end=2, text="we ship friday"),
        Segment(id=2, start=2, end=4, text="fine"),
    ]
    stage = Summarizer(SummarizeOptions(env=GenerationParams(max_tokens=200)), backend)
    first = stage.process(SummarizeInput(segments=segments, template=template))
    Draft202012Validator(BOUNDED).validate(first.summary)
    backend.pause()
    second = stage.process(SummarizeInput(segments=segments, template=template))  # wakes the engine
    Draft202012Validator(BOUNDED).validate(second.summary)
    backend.unload()
