"""The ``openai`` LLM backend: any OpenAI-compatible chat server (vLLM serve, llama.cpp, Ollama).

Requests go over one pooled httpx client with ``response_format`` ``json_schema``, at most
``MAIE_LLM_CONCURRENCY`` at a time. A 5xx, 429 or 408 answer, a timeout or a connection error is
retried (tenacity, exponential back-off from ``MAIE_LLM_RETRY_BACKOFF_S``) up to
``MAIE_LLM_RETRIES`` times; after that the stage fails with a transient error and the worker
retries it later. Any other 4xx is a refusal that retrying cannot fix.

``load()`` asks the server's ``/models`` whether it serves the model, and takes the context window
from its ``max_model_len`` (vLLM reports it) unless ``MAIE_LLM_MAX_MODEL_LEN`` is set.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import msgspec
import structlog

from maie.errors import LlmRequestError, ModelLoadError
from maie.pipeline.llm.base import LlmBackend, LlmReply, LlmRequest
from maie.pipeline.llm.generation import read_generation_config
from maie.pipeline.llm.model_files import find_model_dir
from maie.pipeline.llm.openai_http import EXCERPT, SERVER, RetryableError, call_json, with_retries
from maie.pipeline.llm.tokens import counter_for
from maie.schemas import LlmVersion

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence

    from maie.config import LlmSettings

__all__ = ["DEFAULT_CONTEXT_WINDOW", "OpenAiBackend", "OpenAiOptions"]

log = structlog.get_logger(__name__)

#: Context window assumed when neither MAIE_LLM_MAX_MODEL_LEN nor the server says (logged).
DEFAULT_CONTEXT_WINDOW = 8192

T = TypeVar("T")


class OpenAiOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach the server and which model to ask."""

    base_url: str
    model: str
    api_key: str | None = None
    max_model_len: int | None = None
    timeout_s: float = 300.0
    connect_timeout_s: float = 10.0
    retries: int = 3
    retry_backoff_s: float = 1.0
    concurrency: int = 4
    tokenizer: str | None = None
    bytes_per_token: float = 2.0
    thinking: bool = False
    extra_params: bool = True
    #: ``MAIE_DATA_DIR``: where a local copy of the model (its generation_config.json) may be.
    data_dir: Path = Path("data")

    @classmethod
    def from_settings(cls, llm: LlmSettings, model: str, data_dir: Path) -> OpenAiOptions:
        """Options for ``model`` from the ``MAIE_LLM_*`` settings."""
        if llm.base_url is None:
            msg = "the openai backend needs MAIE_LLM_BASE_URL"
            raise ValueError(msg)
        return cls(
            base_url=llm.base_url.rstrip("/"),
            model=model,
            api_key=llm.api_key,
            max_model_len=llm.max_model_len,
            timeout_s=llm.timeout_s,
            connect_timeout_s=llm.connect_timeout_s,
            retries=llm.retries,
            retry_backoff_s=llm.retry_backoff_s,
            concurrency=llm.concurrency,
            tokenizer=llm.tokenizer,
            bytes_per_token=llm.bytes_per_token,
            thinking=llm.thinking,
            extra_params=llm.openai_extra_params,
            data_dir=data_dir,
        )


class OpenAiBackend(LlmBackend):
    """Chat completions over HTTP."""

    backend_id = "openai"

    def __init__(self, options: OpenAiOptions) -> None:
        super().__init__()
        self.options = options
        self._client: httpx.Client | None = None

    @property
    def loaded(self) -> bool:
        """Whether a client is open."""
        return self._client is not None

    def cache_key(self) -> Hashable:
        """Server and model (never the API key: keys are logged)."""
        return (self.backend_id, self.options.base_url, self.options.model)

    def load(self) -> None:
        """Open the client and check that the server serves the model.

        Raises:
            ModelLoadError: the server does not serve the model, or the tokenizer cannot be read.
            LlmUnavailableError: the server cannot be reached (transient).
        """
        if self._client is not None:
            return
        opts = self.options
        headers = {"Authorization": f"Bearer {opts.api_key}"} if opts.api_key else {}
        client = httpx.Client(
            base_url=opts.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(opts.timeout_s, connect=opts.connect_timeout_s),
            limits=httpx.Limits(max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency),
        )
        try:
            served = self._with_retries(self._served_models, client)
            self._counter = counter_for(opts.tokenizer, opts.bytes_per_token)
        except BaseException:
            client.close()
            raise
        entry: dict[str, Any] = {}
        if served is not None:
            if opts.model not in served:
                client.close()
                log.warning("llm.model_not_served", base_url=opts.base_url, model=opts.model)
                raise ModelLoadError(
                    f"{SERVER} does not serve model {opts.model!r} "
                    f"(it serves: {', '.join(sorted(served)) or 'nothing'}); set MAIE_LLM_SUMMARY_MODEL / "
                    "MAIE_LLM_ENHANCEMENT_MODEL to a served model"
                )
            entry = served[opts.model]
        reported = entry.get("max_model_len")
        self._context = opts.max_model_len or (
            reported if isinstance(reported, int) and reported > 0 else None
        )
        if self._context is None:
            self._context = DEFAULT_CONTEXT_WINDOW
            log.warning(
                "llm.context_assumed",
                context_window=DEFAULT_CONTEXT_WINDOW,
                hint="set MAIE_LLM_MAX_MODEL_LEN",
            )
        self._model_config = read_generation_config(find_model_dir(opts.model, opts.data_dir))
        self._client = client
        log.info(
            "llm.loaded",
            backend=self.backend_id,
            model=opts.model,
            base_url=opts.base_url,
            context_window=self._context,
            token_counter=self._counter.description,
        )

    def unload(self) -> None:
        """Close the client. Safe to call when nothing is open."""
        if self._client is None:
            return
        self._client.close()
        self._client = None
        log.info("llm.unloaded", backend=self.backend_id, model=self.options.model)

    def version_info(self, task: str) -> LlmVersion:
        """The served model; its weights are out of MAIE's reach, so no checkpoint hash."""
        return LlmVersion(
            name=self.backend_id,
            model=self.options.model,
            checkpoint_hash=None,
            quantization=None,
            task=task,
            chat_template="server default",
            thinking=self.options.thinking,
            structured_output="json_schema (response_format)",
            # No base_url: results are read by every client of the task, and the server's address
            # is an internal one (it is logged as llm.loaded).
        )

    def generate(self, batch: Sequence[LlmRequest]) -> list[LlmReply]:
        """Answer ``batch`` with at most ``concurrency`` requests in flight."""
        client = self._client
        if client is None:
            msg = "generate() called before load()"
            raise RuntimeError(msg)
        if len(batch) <= 1:
            return [self._with_retries(self._complete, client, request) for request in batch]
        pool = ThreadPoolExecutor(
            max_workers=min(self.options.concurrency, len(batch)), thread_name_prefix="maie-llm"
        )
        try:
            return list(pool.map(lambda request: self._with_retries(self._complete, client, request), batch))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _body(self, request: LlmRequest) -> dict[str, Any]:
        params = request.params
        body: dict[str, Any] = {
            "model": self.options.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": False,
            "n": 1,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if self.options.extra_params:
            body["top_k"] = params.top_k
            body["repetition_penalty"] = params.repetition_penalty
            body["chat_template_kwargs"] = {"enable_thinking": self.options.thinking}
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.json_schema, "strict": True},
            }
        return {k: v for k, v in body.items() if v is not None}

    def _complete(self, client: httpx.Client, request: LlmRequest) -> LlmReply:
        data = self._call(client, "POST", "chat/completions", json=self._body(request))
        try:
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
            finish_reason = choice.get("finish_reason")
            usage = data.get("usage") or {}
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            msg = f"malformed chat completion (no choices[0].message): {str(data)[:EXCERPT]}"
            raise RetryableError(msg) from exc
        return LlmReply(
            text=str(content),
            finish_reason=finish_reason,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )

    def _served_models(self, client: httpx.Client) -> dict[str, dict[str, Any]] | None:
        try:
            data = self._call(client, "GET", "models")
        except LlmRequestError as exc:
            if exc.extra.get("status") == httpx.codes.NOT_FOUND:
                log.warning("llm.models_endpoint_missing", base_url=self.options.base_url)
                return None
            raise
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            return None
        return {str(e["id"]): e for e in entries if isinstance(e, dict) and "id" in e}

    def _call(self, client: httpx.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:  # noqa: ANN401
        return call_json(client, self.options.base_url, method, path, **kwargs)

    def _with_retries(self, fn: Callable[..., T], *args: Any) -> T:  # noqa: ANN401 - a generic call-through
        opts = self.options
        return with_retries(
            fn, *args, retries=opts.retries, backoff_s=opts.retry_backoff_s, base_url=opts.base_url
        )
