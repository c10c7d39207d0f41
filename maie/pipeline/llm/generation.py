"""Generation parameters, resolved per task: runtime > ``MAIE_LLM_*`` > the model's config > library.

Each level is a :class:`GenerationParams` whose ``None`` fields mean "use the level below". The
result names, for every parameter, the level it came from, so a result can say exactly how it was
decoded. The library level is what vLLM itself uses when a chat request leaves a field out
(``_DEFAULT_SAMPLING_PARAMS`` of its chat-completion protocol, vLLM 0.32); ``max_tokens`` has no
useful library default (vLLM's ``SamplingParams`` says 16), so the caller sizes it from the context
and records it as ``derived``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import msgspec

if TYPE_CHECKING:
    from pathlib import Path

    from maie.config import LlmSettings

__all__ = [
    "LIBRARY_DEFAULTS",
    "PARAMETERS",
    "GenerationParams",
    "ResolvedGeneration",
    "env_params",
    "read_generation_config",
    "resolve_generation",
]

#: The parameters MAIE sets on every request, in a stable order.
PARAMETERS = ("temperature", "top_p", "top_k", "repetition_penalty", "max_tokens")


class GenerationParams(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Sampling parameters of one level; ``None`` means "not set here"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    max_tokens: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The parameters that are set."""
        return {name: value for name in PARAMETERS if (value := getattr(self, name)) is not None}


#: vLLM's defaults for a chat request that leaves a parameter out (top_k 0 disables top-k).
LIBRARY_DEFAULTS = GenerationParams(temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0)

#: generation_config.json keys that vLLM reads as sampling defaults, and MAIE's names for them.
_MODEL_KEYS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "repetition_penalty": "repetition_penalty",
    "max_new_tokens": "max_tokens",
}


class ResolvedGeneration(msgspec.Struct, frozen=True, kw_only=True):
    """Parameters after resolution, and the level each came from."""

    params: GenerationParams
    #: Parameter name → ``runtime``, ``env``, ``model``, ``library`` or ``derived``.
    sources: dict[str, str]

    def with_max_tokens(self, max_tokens: int, source: str = "derived") -> ResolvedGeneration:
        """A copy whose ``max_tokens`` is ``max_tokens``, recorded as coming from ``source``."""
        return ResolvedGeneration(
            params=msgspec.structs.replace(self.params, max_tokens=max_tokens),
            sources={**self.sources, "max_tokens": source},
        )


def resolve_generation(
    *,
    runtime: GenerationParams | None,
    env: GenerationParams,
    model: GenerationParams,
    library: GenerationParams = LIBRARY_DEFAULTS,
) -> ResolvedGeneration:
    """Take each parameter from the highest level that sets it.

    Args:
        runtime: Overrides passed by the caller for this run (highest).
        env: ``MAIE_LLM_<TASK>_*`` settings.
        model: The model's ``generation_config.json``.
        library: The inference library's defaults (lowest).

    Returns:
        The parameters and where each came from; a parameter no level sets stays ``None``.
    """
    levels = (("runtime", runtime), ("env", env), ("model", model), ("library", library))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in PARAMETERS:
        for label, level in levels:
            value = None if level is None else getattr(level, name)
            if value is not None:
                values[name] = value
                sources[name] = label
                break
    return ResolvedGeneration(params=GenerationParams(**values), sources=sources)


def env_params(settings: LlmSettings, task: Literal["enhancement", "summary"]) -> GenerationParams:
    """The ``MAIE_LLM_<TASK>_*`` level of ``task``."""
    return GenerationParams(**{name: getattr(settings, f"{task}_{name}") for name in PARAMETERS})


def read_generation_config(model_dir: Path | None) -> GenerationParams:
    """The sampling defaults in ``model_dir/generation_config.json``, as vLLM reads them.

    A missing or unreadable file, or values of the wrong type, give an empty level: the model's
    defaults are a convenience, never a reason to fail.
    """
    if model_dir is None:
        return GenerationParams()
    path = model_dir / "generation_config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return GenerationParams()
    if not isinstance(data, dict):
        return GenerationParams()
    picked = {ours: data[theirs] for theirs, ours in _MODEL_KEYS.items() if data.get(theirs) is not None}
    try:
        return msgspec.convert(picked, GenerationParams, strict=False)
    except msgspec.ValidationError:
        return GenerationParams()
