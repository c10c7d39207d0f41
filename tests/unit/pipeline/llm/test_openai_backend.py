"""The openai backend against the OpenAI-compatible test server (a real HTTP server, a test double)."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator
from structlog.testing import capture_logs

from maie.errors import LlmRequestError, LlmUnavailableError, ModelLoadError
from maie.pipeline.llm.base import ChatMessage, LlmRequest
from maie.pipeline.llm.generation import GenerationParams
from maie.pipeline.llm.openai_backend import DEFAULT_CONTEXT_WINDOW, OpenAiBackend, OpenAiOptions
from tests.fixtures.llm_server import MODEL, Fault

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "summary"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "summary": {"type": "string", "minLength": 1},
    },
}
PARAMS = GenerationParams(temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0, max_tokens=256)


def request(text: str = "[1] 0.0-2.0 we ship on friday", **overrides) -> LlmRequest:
    values = {
        "messages": (ChatMessage(role="user", content=text),),
        "params": PARAMS,
        "json_schema": SCHEMA,
        "schema_name": "notes",
    }
    values.update(overrides)
    return LlmRequest(**values)


def backend_for(server, tmp_path, **overrides) -> OpenAiBackend:
    values = {
        "base_url": server.url,
        "model": MODEL,
        "timeout_s": 5.0,
        "retries": 2,
        "retry_backoff_s": 0.0,
        "data_dir": tmp_path,
    }
    values.update(overrides)
    return OpenAiBackend(OpenAiOptions(**values))


class TestLoad:
    """load() checks the server and learns the context window."""

    def test_context_window_from_server(self, start_llm_server, tmp_path):
        server = start_llm_server(max_model_len=4096)
        backend = backend_for(server, tmp_path)
        backend.load()
        try:
            assert backend.loaded
            assert backend.context_window == 4096
        finally:
            backend.unload()
        assert not backend.loaded

    def test_setting_wins_over_server(self, llm_server, tmp_path):
        backend = backend_for(llm_server, tmp_path, max_model_len=2048)
        backend.load()
        assert backend.context_window == 2048
        backend.unload()

    def test_unknown_model_is_permanent(self, llm_server, tmp_path):
        backend = backend_for(llm_server, tmp_path, model="no-such-model")
        served = r"does not serve model 'no-such-model'.*maie-test-llm"
        with pytest.raises(ModelLoadError, match=served) as caught:
            backend.load()
        assert llm_server.url not in caught.value.detail
        assert not backend.loaded

    def test_unreachable_server_is_transient(self, tmp_path):
        backend = OpenAiBackend(
            OpenAiOptions(
                base_url="http://127.0.0.1:9/v1", model=MODEL, retries=1, retry_backoff_s=0, data_dir=tmp_path
            )
        )
        with capture_logs() as logs, pytest.raises(LlmUnavailableError, match="failed 2 time") as caught:
            backend.load()
        assert "127.0.0.1:9" not in caught.value.detail, "a task's error never names the internal server"
        assert "MAIE_LLM_BASE_URL" in caught.value.detail
        (logged,) = [e for e in logs if e["event"] == "llm.unavailable"]
        assert logged["base_url"] == "http://127.0.0.1:9/v1", "the log line keeps the address"

    def test_generation_config_of_a_local_copy(self, llm_server, tmp_path):
        """A local copy of the served model (MAIE_DATA_DIR/models/<name>) gives the model level."""
        folder = tmp_path / "models" / MODEL
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "generation_config.json").write_text(json.dumps({"temperature": 0.7, "top_k": 20}))
        backend = backend_for(llm_server, tmp_path)
        backend.load()
        assert backend.model_generation_config() == GenerationParams(temperature=0.7, top_k=20)
        backend.unload()

    def test_no_local_copy_no_model_level(self, llm_server, tmp_path):
        backend = backend_for(llm_server, tmp_path)
        backend.load()
        assert backend.model_generation_config() == GenerationParams()
        backend.unload()


class TestGenerate:
    """Requests as vLLM expects them; answers, retries and refusals."""

    @pytest.fixture
    def backend(self, llm_server, tmp_path):
        backend = backend_for(llm_server, tmp_path, api_key="sk-test")
        llm_server.api_key = "sk-test"
        backend.load()
        yield backend
        backend.unload()

    def test_request_shape(self, backend, llm_server):
        [reply] = backend.generate([request()])
        assert reply.finish_reason == "stop"
        assert Draft202012Validator(SCHEMA).is_valid(json.loads(reply.text))
        body = llm_server.requests[-1]
        assert body["model"] == MODEL
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == SCHEMA
        assert body["response_format"]["json_schema"]["name"] == "notes"
        assert body["max_tokens"] == 256
        assert body["temperature"] == 0.0
        assert body["top_k"] == 0
        assert body["chat_template_kwargs"] == {"enable_thinking": False}
        assert reply.prompt_tokens is not None
        assert reply.completion_tokens is not None

    def test_strict_servers_get_no_extra_fields(self, llm_server, tmp_path):
        backend = backend_for(llm_server, tmp_path, extra_params=False)
        backend.load()
        backend.generate([request()])
        backend.unload()
        body = llm_server.requests[-1]
        assert "top_k" not in body
        assert "repetition_penalty" not in body
        assert "chat_template_kwargs" not in body

    def test_batch_runs_concurrently_within_the_bound(self, llm_server, tmp_path):
        """A hang on every request keeps them in flight together; the bound caps how many."""
        backend = backend_for(llm_server, tmp_path, concurrency=3, timeout_s=5.0)
        backend.load()
        llm_server.hang_s = 0.3
        llm_server.inject(Fault.HANG, times=None)
        replies = backend.generate([request(f"[{i}] 0.0-1.0 text {i}") for i in range(7)])
        backend.unload()
        assert len(replies) == 7
        assert all(r.finish_reason == "stop" for r in replies)
        assert llm_server.max_in_flight == 3
        # Order is kept: each answer quotes the words of its own request.
        assert [json.loads(r.text)["title"] for r in replies] == [f"text {i}" for i in range(7)]

    def test_server_error_is_retried(self, backend, llm_server):
        llm_server.inject(Fault.HTTP_500, times=2)
        [reply] = backend.generate([request()])
        assert reply.finish_reason == "stop"
        assert len(llm_server.requests) == 3

    def test_server_error_after_retries_is_transient(self, backend, llm_server):
        llm_server.inject(Fault.HTTP_500, times=None)
        with pytest.raises(LlmUnavailableError, match="HTTP 500"):
            backend.generate([request()])
        assert len(llm_server.requests) == 3

    def test_hang_past_timeout_is_retried(self, llm_server, tmp_path):
        backend = backend_for(llm_server, tmp_path, timeout_s=0.5)
        backend.load()
        llm_server.hang_s = 3.0
        llm_server.inject(Fault.HANG, times=1)
        [reply] = backend.generate([request()])
        backend.unload()
        assert reply.finish_reason == "stop"
        assert len(llm_server.requests) == 2

    def test_too_long_prompt_is_refused_for_good(self, start_llm_server, tmp_path):
        server = start_llm_server(max_model_len=300)
        backend = backend_for(server, tmp_path)
        backend.load()
        with pytest.raises(LlmRequestError, match=r"HTTP 400.*maximum context length is 300"):
            backend.generate([request("word " * 400)])
        backend.unload()
        assert len(server.requests) == 0, "a refusal is not retried"

    def test_wrong_key_is_refused(self, llm_server, tmp_path):
        llm_server.api_key = "right"
        backend = backend_for(llm_server, tmp_path, api_key="wrong")
        with pytest.raises(LlmRequestError, match="HTTP 401") as caught:
            backend.load()
        address = llm_server.url.split("/v1")[0]
        assert address not in caught.value.detail, "the server's address stays in the log"

    def test_truncation_is_reported(self, backend, llm_server):
        llm_server.inject(Fault.LENGTH)
        [reply] = backend.generate([request()])
        assert reply.truncated

    def test_invalid_schema_is_refused_by_the_server(self, backend):
        with pytest.raises(LlmRequestError, match="not a valid JSON Schema"):
            backend.generate([request(json_schema={"type": "not-a-type"})])

    def test_cache_key_holds_no_secret(self, llm_server, tmp_path):
        backend = backend_for(llm_server, tmp_path, api_key="sk-secret")
        assert "sk-secret" not in repr(backend.cache_key())

    def test_assumed_context_when_nobody_says(self, start_llm_server, tmp_path):
        """llama.cpp and Ollama do not report a context: MAIE assumes one and says so in the log."""
        from structlog.testing import capture_logs

        server = start_llm_server(report_max_model_len=False)
        backend = backend_for(server, tmp_path)
        with capture_logs() as logs:
            backend.load()
        backend.unload()
        assert backend._context == DEFAULT_CONTEXT_WINDOW
        assert any(entry["event"] == "llm.context_assumed" for entry in logs)
