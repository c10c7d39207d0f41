"""Per-request ASR options of POST /v1/process, checked against what the chosen backend can do.

Malformed values (out of bounds, blank) are 400; a well-formed option the backend cannot honour
(hotwords for PocketSphinx, Spanish for an English-only model) is 422 naming the backend and what
it does support, so a client learns at submit time rather than from a silently ignored field.
"""

from __future__ import annotations

from dataclasses import dataclass

from maie.config import MAX_PROMPT_CHARS
from maie.errors import InvalidRequestError, UnprocessableError
from maie.schemas import ModelInfo  # noqa: TC001 - used at runtime by callers' annotations

__all__ = ["MAX_BEAM_SIZE", "MIN_BEAM_SIZE", "TASKS", "AsrRequestOptions", "check_asr_options"]

#: Smallest beam a request may ask for (1 is greedy decoding).
MIN_BEAM_SIZE = 1
#: Largest beam a request may ask for: wider beams cost time and memory for no measurable gain.
MAX_BEAM_SIZE = 20
#: What the ASR is asked to do: write down what was said, or translate it into English (Whisper).
TASKS = ("transcribe", "translate")


@dataclass(frozen=True, slots=True)
class AsrRequestOptions:
    """The ASR options of one request, validated."""

    hotwords: str | None = None
    initial_prompt: str | None = None
    beam_size: int | None = None
    #: ``translate``, or None to transcribe (the default, left out of the stored request).
    task: str | None = None


def _prompt(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise InvalidRequestError(f"{name} is empty; leave the field out to use the server's default")
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidRequestError(
            f"{name} is {len(text)} characters long; at most {MAX_PROMPT_CHARS} are accepted "
            "(Whisper keeps only its last 223 prompt tokens anyway)"
        )
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in text):  # noqa: PLR2004 - ASCII control range
        raise InvalidRequestError(f"{name} contains control characters")
    return text


def _unsupported(model: ModelInfo, what: str) -> UnprocessableError:
    return UnprocessableError(
        f"asr_backend {model.backend_id!r} does not support {what}; its capabilities are "
        f"{', '.join(model.capabilities) or 'none'} (see GET /v1/models)",
        extra={"backend_id": model.backend_id, "capabilities": model.capabilities},
    )


def check_asr_options(
    model: ModelInfo,
    *,
    language: str | None,
    word_timestamps: bool | None,
    hotwords: str | None,
    initial_prompt: str | None,
    beam_size: int | None,
    task: str | None = None,
) -> AsrRequestOptions:
    """Validate a request's ASR options for the backend ``model`` describes.

    Raises:
        InvalidRequestError: a value out of bounds or blank (400).
        UnprocessableError: an option or language the backend cannot honour (422).
    """
    task = task.strip().lower() if task else None
    if task is not None and task not in TASKS:
        raise InvalidRequestError(f"task must be one of {', '.join(TASKS)}, got {task[:32]!r}")
    options = AsrRequestOptions(
        hotwords=_prompt("hotwords", hotwords),
        initial_prompt=_prompt("initial_prompt", initial_prompt),
        beam_size=beam_size,
        task=task if task == "translate" else None,
    )
    if beam_size is not None and not MIN_BEAM_SIZE <= beam_size <= MAX_BEAM_SIZE:
        raise InvalidRequestError(
            f"beam_size must be between {MIN_BEAM_SIZE} and {MAX_BEAM_SIZE}, got {beam_size}"
        )
    capabilities = set(model.capabilities)
    if (options.hotwords or options.initial_prompt) and "custom_vocabulary" not in capabilities:
        raise _unsupported(model, "hotwords or initial_prompt")
    if beam_size is not None and "beam_size" not in capabilities:
        raise _unsupported(model, "beam_size")
    if word_timestamps and "word_timestamps" not in capabilities:
        raise _unsupported(model, "word_timestamps")
    if options.task == "translate" and "translate" not in capabilities:
        raise _unsupported(model, "task=translate (speech translated into English)")
    if language and model.languages is not None and language not in model.languages:
        raise UnprocessableError(
            f"asr_backend {model.backend_id!r} does not transcribe language {language!r}; "
            f"it knows {', '.join(model.languages[:20])}{' …' if len(model.languages) > 20 else ''}",  # noqa: PLR2004
            extra={"backend_id": model.backend_id, "languages": model.languages},
        )
    return options
