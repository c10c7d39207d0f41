"""The vllm backend against vLLM 0.32's interface, through the fake ``vllm`` module (a test double)."""

from __future__ import annotations

import json
import sys

import pytest
from jsonschema import Draft202012Validator

from maie.errors import ConfigError, LlmRequestError, ModelLoadError
from maie.pipeline.llm.base import ChatMessage, LlmRequest
from maie.pipeline.llm.generation import GenerationParams
from maie.pipeline.llm.summarize import SummarizeInput, SummarizeOptions, Summarizer
from maie.pipeline.llm.vllm_backend import VllmBackend, VllmOptions
from maie.pipeline.prompts import TemplateCatalog, default_templates_dir
from maie.schemas import Segment

SCHEMA = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}
PARAMS = GenerationParams(temperature=0.0, top_p=0.9, top_k=20, repetition_penalty=1.05, max_tokens=128)


def model_dir(tmp_path):
    folder = tmp_path / "tiny-qwen"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "generation_config.json").write_text(json.dumps({"temperature": 0.7, "top_k": 20}))
    return folder


def request(text="[1] 0.0-1.0 hello there") -> LlmRequest:
    return LlmRequest(
        messages=(ChatMessage(role="user", content=text),), params=PARAMS, json_schema=SCHEMA, schema_name="t"
    )


class TestLoad:
    def test_engine_arguments(self, fake_vllm, tmp_path):
        folder = model_dir(tmp_path)
        backend = VllmBackend(
            VllmOptions(model=str(folder), data_dir=tmp_path, max_model_len=8192, gpu_memory_utilization=0.5)
        )
        backend.load()
        [llm] = fake_vllm.LLM.instances
        assert llm.model == str(folder)
        assert llm.kwargs["gpu_memory_utilization"] == 0.5
        assert llm.kwargs["max_model_len"] == 8192
        assert llm.kwargs["enable_sleep_mode"] is False
        assert llm.kwargs["download_dir"] == str(tmp_path / "models" / "hub")
        assert backend.context_window == 8192
        assert backend.model_generation_config() == GenerationParams(temperature=0.7, top_k=20)
        version = backend.version_info("summary")
        import hashlib

        assert version.checkpoint_hash == hashlib.sha256(b"weights").hexdigest()
        assert version.chat_template == "model default"
        assert version.structured_output == "json_schema (vllm structured_outputs)"
        backend.unload()

    def test_hub_id_fetched_by_the_script_is_found(self, fake_vllm, tmp_path):
        fetched = tmp_path / "models" / "Qwen" / "Qwen3-4B"
        fetched.mkdir(parents=True)
        (fetched / "config.json").write_text("{}")
        backend = VllmBackend(VllmOptions(model="Qwen/Qwen3-4B", data_dir=tmp_path))
        backend.load()
        assert fake_vllm.LLM.instances[0].model == str(fetched)
        backend.unload()

    def test_shipped_chat_template(self, fake_vllm, tmp_path):
        backend = VllmBackend(
            VllmOptions(model=str(model_dir(tmp_path)), data_dir=tmp_path, chat_template="qwen3_nonthinking")
        )
        backend.load()
        backend.generate([request()])
        call = fake_vllm.LLM.instances[0].chat_calls[-1]
        assert "<think>\\n\\n</think>" in call["chat_template"]
        assert call["chat_template_kwargs"] == {"enable_thinking": False}
        assert backend.version_info("summary").chat_template.startswith("qwen3_nonthinking (sha256 ")
        backend.unload()

    def test_unknown_chat_template(self, fake_vllm, tmp_path):
        backend = VllmBackend(
            VllmOptions(model=str(model_dir(tmp_path)), data_dir=tmp_path, chat_template="nope")
        )
        with pytest.raises(ConfigError, match=r"MAIE_LLM_CHAT_TEMPLATE='nope'.*qwen3_nonthinking"):
            backend.load()

    def test_without_vllm_installed(self, monkeypatch, tmp_path):
        monkeypatch.setitem(sys.modules, "vllm", None)
        backend = VllmBackend(VllmOptions(model="m", data_dir=tmp_path))
        with pytest.raises(ModelLoadError, match="uv sync --extra vllm"):
            backend.load()


class TestGenerate:
    def test_batch_in_one_call_with_structured_outputs(self, fake_vllm, tmp_path):
        backend = VllmBackend(VllmOptions(model=str(model_dir(tmp_path)), data_dir=tmp_path))
        backend.load()
        replies = backend.generate([request(f"[{i}] 0.0-1.0 words {i}") for i in range(3)])
        llm = fake_vllm.LLM.instances[0]
        assert len(llm.chat_calls) == 1
        call = llm.chat_calls[0]
        assert len(call["messages"]) == 3
        params = call["sampling_params"]
        assert params[0].kwargs["structured_outputs"].json == SCHEMA
        assert {
            k: params[0].kwargs[k]
            for k in ("temperature", "top_p", "top_k", "repetition_penalty", "max_tokens")
        } == {
            "temperature": 0.0,
            "top_p": 0.9,
            "top_k": 20,
            "repetition_penalty": 1.05,
            "max_tokens": 128,
        }
        assert call["use_tqdm"] is False
        assert all(Draft202012Validator(SCHEMA).is_valid(json.loads(r.text)) for r in replies)
        assert [r.finish_reason for r in replies] == ["stop"] * 3
        assert replies[0].prompt_tokens > 0
        backend.unload()

    def test_prompt_too_long_is_refused_for_good(self, fake_vllm, tmp_path):
        backend = VllmBackend(
            VllmOptions(model=str(model_dir(tmp_path)), data_dir=tmp_path, max_model_len=50)
        )
        backend.load()
        with pytest.raises(LlmRequestError, match="vLLM refused"):
            backend.generate([request("word " * 200)])
        backend.unload()

    def test_summary_through_vllm(self, fake_vllm, tmp_path):
        backend = VllmBackend(VllmOptions(model=str(model_dir(tmp_path)), data_dir=tmp_path))
        backend.load()
        template = TemplateCatalog(default_templates_dir()).get("meeting_notes_v1")
        segments = [
            Segment(id=1, start=0, end=2, text="we ship friday"),
            Segment(id=2, start=2, end=4, text="ok"),
        ]
        artifact = Summarizer(SummarizeOptions(), backend).process(
            SummarizeInput(segments=segments, template=template)
        )
        Draft202012Validator(template.schema).validate(artifact.summary)
        assert artifact.version.name == "vllm"
        assert artifact.version.decoding_sources["temperature"] == "model"
        backend.unload()


class TestResidency:
    """unload() shuts the engine down and frees memory; resident engines sleep instead of reloading."""

    def test_unload_frees(self, fake_vllm, tmp_path):
        backend = VllmBackend(VllmOptions(model=str(model_dir(tmp_path)), data_dir=tmp_path))
        backend.load()
        llm = fake_vllm.LLM.instances[0]
        backend.unload()
        assert llm.llm_engine.engine_core.shut_down
        assert fake_vllm.cleanups == [1]
        assert not backend.loaded
        backend.unload()
        assert fake_vllm.cleanups == [1], "a second unload does nothing"

    def test_sleep_and_wake_instead_of_reload(self, fake_vllm, tmp_path):
        backend = VllmBackend(
            VllmOptions(model=str(model_dir(tmp_path)), data_dir=tmp_path, sleep_when_idle=True)
        )
        backend.load()
        llm = fake_vllm.LLM.instances[0]
        assert llm.kwargs["enable_sleep_mode"] is True
        backend.pause()
        assert llm.sleeping
        assert llm.sleep_calls == [1]
        backend.generate([request()])  # wakes first; the double refuses to generate asleep
        assert not llm.sleeping
        backend.load()
        assert len(fake_vllm.LLM.instances) == 1, "no reload"
        backend.unload()

    def test_sequential_engines_do_not_sleep(self, fake_vllm, tmp_path):
        backend = VllmBackend(VllmOptions(model=str(model_dir(tmp_path)), data_dir=tmp_path))
        backend.load()
        backend.pause()
        assert not fake_vllm.LLM.instances[0].sleeping
        backend.unload()
