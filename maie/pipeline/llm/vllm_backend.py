"""The ``vllm`` LLM backend: an in-process ``vllm.LLM`` on the GPU (optional extra ``vllm``).

vLLM is imported in :meth:`VllmBackend.load`, never at module level, so the default install (no
vLLM, no CUDA torch) can import, list and test everything else. Written against vLLM 0.32:
``LLM.chat(conversations, sampling_params=[...], chat_template=..., chat_template_kwargs=...)``,
``SamplingParams(structured_outputs=StructuredOutputsParams(json=schema))`` for JSON-Schema
decoding, ``LLM.sleep(level=1)`` / ``LLM.wake_up()`` with ``enable_sleep_mode=True``, and
``vllm.distributed.parallel_state.cleanup_dist_env_and_memory()`` after shutting the engine core
down to give the GPU memory back.

In ``resident`` mode an idle engine is put to sleep (weights to CPU memory, KV cache dropped) when
its stage ends, and woken by the next request: the GPU is free for ASR in between, at the cost of
a copy back rather than a reload.
"""

from __future__ import annotations

import gc
import importlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from maie.errors import LlmRequestError, LlmUnavailableError, ModelLoadError, PermanentError
from maie.pipeline.llm.base import LlmBackend, LlmReply, LlmRequest
from maie.pipeline.llm.chat_templates import ChatTemplate, resolve_chat_template
from maie.pipeline.llm.generation import read_generation_config
from maie.pipeline.llm.model_files import find_model_dir, hub_cache_dir, weights_sha256
from maie.pipeline.llm.tokens import EncodeCounter
from maie.schemas import LlmVersion

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

    from maie.config import LlmSettings

__all__ = ["VllmBackend", "VllmOptions"]

log = structlog.get_logger(__name__)

#: What to tell an operator who asked for vLLM where it is not installed.
_INSTALL_HINT = (
    "install the `vllm` extra on a GPU host (uv sync --extra vllm), "
    "or serve the model elsewhere and set MAIE_LLM_BACKEND=openai"
)


class VllmOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to load the model. Everything here is part of the cache key."""

    model: str
    data_dir: Path = Path("data")
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.85
    quantization: str | None = None
    dtype: str = "auto"
    chat_template: str | None = None
    thinking: bool = False
    #: Sleep between stages instead of staying on the GPU (resident mode only).
    sleep_when_idle: bool = False
    seed: int = 0

    @classmethod
    def from_settings(cls, llm: LlmSettings, model: str, data_dir: Path, *, resident: bool) -> VllmOptions:
        """Options for ``model``; sleeping applies only to a resident worker."""
        return cls(
            model=model,
            data_dir=data_dir,
            max_model_len=llm.max_model_len,
            gpu_memory_utilization=llm.gpu_memory_utilization,
            quantization=llm.quantization,
            dtype=llm.dtype,
            chat_template=llm.chat_template,
            thinking=llm.thinking,
            sleep_when_idle=resident and llm.sleep_when_idle,
        )


class VllmBackend(LlmBackend):
    """``vllm.LLM`` as a backend."""

    backend_id = "vllm"

    def __init__(self, options: VllmOptions) -> None:
        super().__init__()
        self.options = options
        self._llm: Any = None
        self._sampling: Any = None
        self._structured: Any = None
        self._errors: Any = None
        self._template: ChatTemplate | None = None
        self._checkpoint: str | None = None
        self._quantization: str | None = None
        self._sleeping = False

    @property
    def loaded(self) -> bool:
        """Whether an engine exists (awake or asleep)."""
        return self._llm is not None

    def cache_key(self) -> Hashable:
        """The backend id and the full load options."""
        return (self.backend_id, self.options)

    def load(self) -> None:
        """Start the engine (or wake it).

        Raises:
            ModelLoadError: vLLM is missing, the chat template is unreadable, or the engine fails
                to start (no GPU, not enough memory, unreadable weights).
        """
        if self._llm is not None:
            self._wake()
            return
        opts = self.options
        try:
            vllm = importlib.import_module("vllm")
            sampling = importlib.import_module("vllm.sampling_params")
            errors = importlib.import_module("vllm.exceptions")
        except ImportError as exc:
            raise ModelLoadError(f"vLLM cannot be imported ({exc}); {_INSTALL_HINT}") from exc
        self._template = resolve_chat_template(opts.chat_template)
        folder = find_model_dir(opts.model, opts.data_dir)
        started = time.perf_counter()
        try:
            llm = vllm.LLM(
                model=str(folder) if folder is not None else opts.model,
                dtype=opts.dtype,
                quantization=opts.quantization,
                gpu_memory_utilization=opts.gpu_memory_utilization,
                max_model_len=opts.max_model_len,
                seed=opts.seed,
                enable_sleep_mode=opts.sleep_when_idle,
                download_dir=str(hub_cache_dir(opts.data_dir)),
            )
        except (RuntimeError, ValueError, OSError, errors.VLLMError) as exc:
            raise ModelLoadError(f"vLLM cannot load {opts.model!r}: {type(exc).__name__}: {exc}") from exc
        self._llm, self._errors = llm, errors
        self._sampling, self._structured = sampling.SamplingParams, sampling.StructuredOutputsParams
        model_config = llm.llm_engine.model_config
        self._context = int(model_config.max_model_len)
        self._quantization = opts.quantization or getattr(model_config, "quantization", None)
        tokenizer = llm.get_tokenizer()
        self._counter = EncodeCounter(
            lambda text: list(tokenizer.encode(text, add_special_tokens=False)), "vllm tokenizer"
        )
        folder = folder or find_model_dir(opts.model, opts.data_dir)
        self._checkpoint = (
            None if folder is None else weights_sha256(folder, cache_dir=opts.data_dir / "cache")
        )
        self._model_config = read_generation_config(folder)
        log.info(
            "llm.loaded",
            backend=self.backend_id,
            model=opts.model,
            model_path=None if folder is None else str(folder),
            context_window=self._context,
            sleep_mode=opts.sleep_when_idle,
            load_s=round(time.perf_counter() - started, 3),
        )

    def pause(self) -> None:
        """Put the engine to sleep (level 1: weights to CPU, KV cache freed) when allowed."""
        if self._llm is None or self._sleeping or not self.options.sleep_when_idle:
            return
        self._llm.sleep(level=1)
        self._sleeping = True
        log.info("llm.sleeping", backend=self.backend_id, model=self.options.model)

    def _wake(self) -> None:
        if self._sleeping:
            self._llm.wake_up()
            self._sleeping = False
            log.info("llm.woken", backend=self.backend_id, model=self.options.model)

    def unload(self) -> None:
        """Shut the engine down and return its GPU memory. Safe to call when nothing is loaded."""
        if self._llm is None:
            return
        llm, self._llm, self._sleeping = self._llm, None, False
        engine_core = getattr(llm.llm_engine, "engine_core", None)
        if engine_core is not None:
            engine_core.shutdown()
        del llm
        gc.collect()
        parallel_state = sys.modules.get("vllm.distributed.parallel_state") or importlib.import_module(
            "vllm.distributed.parallel_state"
        )
        parallel_state.cleanup_dist_env_and_memory()
        log.info("llm.unloaded", backend=self.backend_id, model=self.options.model)

    def version_info(self, task: str) -> LlmVersion:
        """The loaded model, its weights' sha256 and chat template."""
        return LlmVersion(
            name=self.backend_id,
            model=self.options.model,
            checkpoint_hash=self._checkpoint,
            quantization=self._quantization,
            task=task,
            chat_template=self._template.label if self._template else "model default",
            thinking=self.options.thinking,
            structured_output="json_schema (vllm structured_outputs)",
        )

    def generate(self, batch: Sequence[LlmRequest]) -> list[LlmReply]:
        """Answer ``batch`` in one ``LLM.chat`` call; vLLM batches it on the GPU."""
        if self._llm is None:
            msg = "generate() called before load()"
            raise RuntimeError(msg)
        if not batch:
            return []
        self._wake()
        conversations = [[{"role": m.role, "content": m.content} for m in r.messages] for r in batch]
        errors = self._errors
        try:
            outputs = self._llm.chat(
                conversations,
                sampling_params=[self._sampling_params(r) for r in batch],
                use_tqdm=False,
                chat_template=self._template.text if self._template else None,
                chat_template_kwargs={"enable_thinking": self.options.thinking},
            )
        except errors.VLLMClientError as exc:
            raise LlmRequestError(f"vLLM refused the request: {exc}") from exc
        except errors.VLLMServerError as exc:
            raise LlmUnavailableError(f"vLLM failed to generate: {exc}") from exc
        except RuntimeError as exc:
            if _is_out_of_memory(exc):
                raise PermanentError(f"out of GPU memory while generating: {exc}") from exc
            raise
        return [_reply(output) for output in outputs]

    def _sampling_params(self, request: LlmRequest) -> Any:  # noqa: ANN401 - vllm is untyped here
        params = request.params
        structured = None if request.json_schema is None else self._structured(json=request.json_schema)
        return self._sampling(
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            repetition_penalty=params.repetition_penalty,
            max_tokens=params.max_tokens,
            structured_outputs=structured,
        )


def _reply(output: Any) -> LlmReply:  # noqa: ANN401 - vllm's RequestOutput
    completion = output.outputs[0]
    return LlmReply(
        text=completion.text,
        finish_reason=completion.finish_reason,
        prompt_tokens=len(output.prompt_token_ids or ()),
        completion_tokens=len(completion.token_ids or ()),
    )


def _is_out_of_memory(exc: RuntimeError) -> bool:
    """Whether ``exc`` is torch's CUDA out-of-memory error (torch is loaded wherever vLLM runs)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)
