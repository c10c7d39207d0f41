"""Generation parameters: runtime > env > the model's generation_config.json > library default."""

from __future__ import annotations

import json

from maie.config import Settings
from maie.pipeline.llm.generation import (
    LIBRARY_DEFAULTS,
    GenerationParams,
    env_params,
    read_generation_config,
    resolve_generation,
)


class TestResolve:
    """Each parameter comes from the highest level that sets it; None falls through."""

    def test_levels_in_order(self):
        resolved = resolve_generation(
            runtime=GenerationParams(temperature=0.1),
            env=GenerationParams(temperature=0.5, top_p=0.9),
            model=GenerationParams(temperature=0.7, top_p=0.8, top_k=20),
        )
        assert resolved.params == GenerationParams(
            temperature=0.1, top_p=0.9, top_k=20, repetition_penalty=1.0, max_tokens=None
        )
        assert resolved.sources == {
            "temperature": "runtime",
            "top_p": "env",
            "top_k": "model",
            "repetition_penalty": "library",
        }

    def test_no_runtime_level(self):
        resolved = resolve_generation(runtime=None, env=GenerationParams(), model=GenerationParams())
        assert resolved.params == LIBRARY_DEFAULTS
        assert set(resolved.sources.values()) == {"library"}

    def test_zero_is_a_value_not_unset(self):
        """temperature=0 (greedy) set in the environment must win over the model's 0.7."""
        resolved = resolve_generation(
            runtime=None, env=GenerationParams(temperature=0.0), model=GenerationParams(temperature=0.7)
        )
        assert resolved.params.temperature == 0.0
        assert resolved.sources["temperature"] == "env"

    def test_derived_max_tokens_is_recorded_as_such(self):
        resolved = resolve_generation(runtime=None, env=GenerationParams(), model=GenerationParams())
        sized = resolved.with_max_tokens(512)
        assert sized.params.max_tokens == 512
        assert sized.sources["max_tokens"] == "derived"
        assert resolved.params.max_tokens is None


class TestEnvLevel:
    """MAIE_LLM_<TASK>_* feed the env level of their task only."""

    def test_per_task(self):
        settings = Settings.from_env(
            {
                "MAIE_LLM_BACKEND": "openai",
                "MAIE_LLM_BASE_URL": "http://127.0.0.1:1/v1",
                "MAIE_LLM_SUMMARY_MODEL": "m",
                "MAIE_LLM_SUMMARY_TEMPERATURE": "0.3",
                "MAIE_LLM_ENHANCEMENT_TOP_K": "5",
                "MAIE_LLM_SUMMARY_MAX_TOKENS": "900",
            },
            env_file=None,
        )
        assert env_params(settings.llm, "summary") == GenerationParams(temperature=0.3, max_tokens=900)
        assert env_params(settings.llm, "enhancement") == GenerationParams(top_k=5)


class TestModelLevel:
    """generation_config.json read as vLLM reads it."""

    def test_keys_vllm_reads(self, tmp_path):
        (tmp_path / "generation_config.json").write_text(
            json.dumps(
                {
                    "temperature": 0.6,
                    "top_p": 0.95,
                    "top_k": 20,
                    "repetition_penalty": 1.05,
                    "max_new_tokens": 2048,
                    "do_sample": True,
                    "eos_token_id": [1, 2],
                }
            )
        )
        assert read_generation_config(tmp_path) == GenerationParams(
            temperature=0.6, top_p=0.95, top_k=20, repetition_penalty=1.05, max_tokens=2048
        )

    def test_missing_or_broken_is_empty(self, tmp_path):
        assert read_generation_config(None) == GenerationParams()
        assert read_generation_config(tmp_path) == GenerationParams()
        (tmp_path / "generation_config.json").write_text("{not json")
        assert read_generation_config(tmp_path) == GenerationParams()
        (tmp_path / "generation_config.json").write_text(json.dumps({"temperature": "hot"}))
        assert read_generation_config(tmp_path) == GenerationParams()
