"""Counting tokens to decide how much transcript fits in one request.

With vLLM the engine's own tokenizer counts exactly. Behind an OpenAI-compatible server there is
no tokenizer unless one is configured (``MAIE_LLM_TOKENIZER``: the model's ``tokenizer.json``, read
with the ``tokenizers`` library). Without one, counts are estimated from the UTF-8 length at
``MAIE_LLM_BYTES_PER_TOKEN`` bytes per token (2.0 by default). Every byte-level BPE token covers at
least one byte; current LLM tokenizers average about 4 bytes per token on English and 3 on JSON,
Vietnamese and Chinese, and even GPT-2's small vocabulary (Whisper's tokenizer) stays above 2.2 on
JSON schemas, the densest text MAIE sends. So the default over-counts in practice: chunks come out
smaller than they could be, not too large. Small-vocabulary models on non-Latin scripts can go
below 2: configure their tokenizer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from maie.errors import ModelLoadError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["EncodeCounter", "EstimatedCounter", "TokenCounter", "TokenizerFileCounter", "counter_for"]


class TokenCounter(Protocol):
    """Counts tokens of a text."""

    #: What counts: ``estimate (2.5 bytes/token)``, ``tokenizer.json at ...``, ``vllm tokenizer``.
    description: str

    def count(self, text: str) -> int:
        """Tokens of ``text`` (or a safe over-estimate)."""
        ...


class EstimatedCounter:
    """Over-estimates tokens from the UTF-8 length."""

    def __init__(self, bytes_per_token: float) -> None:
        if bytes_per_token <= 0:
            msg = "bytes_per_token must be positive"
            raise ValueError(msg)
        self.bytes_per_token = bytes_per_token
        self.description = f"estimate ({bytes_per_token:g} bytes/token)"

    def count(self, text: str) -> int:
        """``ceil(utf8 bytes / bytes_per_token)``."""
        return math.ceil(len(text.encode("utf-8")) / self.bytes_per_token)


class EncodeCounter:
    """Counts with a tokenizer's ``encode`` (vLLM's engine tokenizer, a Hugging Face tokenizer)."""

    def __init__(self, encode: Callable[[str], list[int]], description: str) -> None:
        self._encode = encode
        self.description = description

    def count(self, text: str) -> int:
        """Exact token count."""
        return len(self._encode(text))


class TokenizerFileCounter:
    """Counts exactly with a ``tokenizer.json`` (the ``tokenizers`` library, no model needed)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer  # noqa: PLC0415 - only when a tokenizer is configured

        file = path / "tokenizer.json" if path.is_dir() else path
        try:
            self._tokenizer = Tokenizer.from_file(str(file))
        except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
            raise ModelLoadError(
                f"MAIE_LLM_TOKENIZER={str(path)!r}: cannot read a tokenizer from {file} ({exc}); "
                "point it at the model's tokenizer.json or a folder holding one, or unset it to estimate"
            ) from exc
        self.description = f"tokenizer.json at {file}"

    def count(self, text: str) -> int:
        """Exact token count, without special tokens (the chat template adds those)."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def counter_for(tokenizer: str | None, bytes_per_token: float) -> TokenCounter:
    """The counter for ``MAIE_LLM_TOKENIZER`` (exact) or, when unset, the estimate.

    Raises:
        ModelLoadError: if a tokenizer is configured but cannot be read.
    """
    if tokenizer:
        return TokenizerFileCounter(Path(tokenizer).expanduser())
    return EstimatedCounter(bytes_per_token)
