"""Constrained field types, limits and helpers shared by the settings Structs."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

__all__ = [
    "ASR_BACKENDS",
    "DIARIZATION_BACKENDS",
    "MAX_PROMPT_CHARS",
    "MAX_TEMPERATURE",
    "MIN_DECODE_MEMORY_MB",
    "RATE_LIMIT_OFF",
    "NonNegative",
    "NonNegativeFloat",
    "Port",
    "Positive",
    "PositiveFloat",
    "Probability",
    "TopK",
    "TopP",
    "env_names",
]


Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


Positive = Annotated[int, msgspec.Meta(ge=1)]


NonNegative = Annotated[int, msgspec.Meta(ge=0)]


PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]


Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]


TopP = Annotated[float, msgspec.Meta(gt=0, le=1)]


TopK = Annotated[int, msgspec.Meta(ge=-1)]


#: Highest sampling temperature accepted in MAIE_WHISPER_TEMPERATURE.
MAX_TEMPERATURE = 2.0


#: ASR backend ids MAIE_ASR_BACKEND and MAIE_ASR_FALLBACK may name; the registry
#: (maie/pipeline/asr/registry.py) registers exactly these, which a test checks.
ASR_BACKENDS = ("whisper", "pocketsphinx", "chunkformer")


#: Diarization backend ids MAIE_DIARIZATION_BACKEND and MAIE_DIARIZATION_FALLBACK may name; the
#: registry (maie/pipeline/diarization/registry.py) registers exactly these, which a test checks.
DIARIZATION_BACKENDS = ("embedded", "pyannote", "channels")


#: Longest Whisper prompt text (hotwords, initial prompt) accepted, in characters. Whisper keeps at
#: most 223 prompt tokens anyway; this bound only stops absurd values early.
MAX_PROMPT_CHARS = 1000


#: Smallest decode memory limit, in MiB: decoding even hours of audio adds under 32 MiB
#: (scripts/bench_decode.py measures it), so less would refuse good files.
MIN_DECODE_MEMORY_MB = 64


#: Values of MAIE_RATE_LIMIT and MAIE_RATE_LIMIT_SUBMIT that turn the limit off.
RATE_LIMIT_OFF = frozenset({"off", "none", "0"})


def env_names(prefix: str) -> Any:  # noqa: ANN401 - msgspec's rename accepts any callable
    """A ``rename`` for msgspec: field ``port`` of a group with prefix ``""`` is ``MAIE_PORT``."""
    return lambda field: f"MAIE_{prefix}{field.upper()}"
