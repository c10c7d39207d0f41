"""OpenAI's audio API shapes, built from MAIE transcripts: pure functions for the ``/openai/v1`` routes.

Shapes follow the ``openai`` package's own types (``openai/types/audio/transcription*.py``,
``transcription_stream_event.py``, ``types/model.py``) and the API reference, and the tests
parse every body with those types. Where MAIE keeps less than Whisper's raw output, fields are
derived or neutral: ``avg_logprob`` is the log of the segment's confidence (the Whisper backend
stores ``exp(avg_logprob)``), ``compression_ratio`` is computed from the text with zlib as Whisper
does, ``seek`` is the segment start in Whisper's 10 ms frames, ``tokens`` is empty and
``no_speech_prob`` is 0 (segments do not keep them). SubRip, WebVTT and text come from
:mod:`maie.transcripts`.
"""

from __future__ import annotations

import enum
import math
import zlib
from typing import TYPE_CHECKING, Literal

import msgspec

from maie.errors import MaieError, ModelNotFoundError
from maie.pipeline.asr.whisper_options import WHISPER_LANGUAGES
from maie.transcripts import MEDIA_TYPES, ExportFormat, to_srt, to_vtt

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from maie.schemas import ModelInfo, Segment

__all__ = [
    "LANGUAGE_NAMES",
    "VARIANT_SEPARATOR",
    "WHISPER_ALIAS",
    "ErrorBody",
    "ErrorResponse",
    "Granularity",
    "ModelCard",
    "ModelList",
    "ResponseFormat",
    "TextDeltaEvent",
    "TextDoneEvent",
    "Transcription",
    "VerboseSegment",
    "VerboseTranscription",
    "VerboseWord",
    "error_body",
    "error_response",
    "error_type",
    "language_name",
    "model_id",
    "model_list",
    "resolve_model",
    "sse",
    "stream_events",
    "transcription_body",
]

#: Model id many OpenAI clients send without asking; it means MAIE's Whisper backend.
WHISPER_ALIAS = "whisper-1"

# Whisper's English language names, in the order of WHISPER_LANGUAGES (OpenAI answers with these).
# One string, not a 100-line list literal; the strict zip below checks the count.
_NAMES = (  # noqa: SIM905
    "english|chinese|german|spanish|russian|korean|french|japanese|portuguese|turkish|polish|catalan|"
    "dutch|arabic|swedish|italian|indonesian|hindi|finnish|vietnamese|hebrew|ukrainian|greek|malay|"
    "czech|romanian|danish|hungarian|tamil|norwegian|thai|urdu|croatian|bulgarian|lithuanian|latin|"
    "maori|malayalam|welsh|slovak|telugu|persian|latvian|bengali|serbian|azerbaijani|slovenian|"
    "kannada|estonian|macedonian|breton|basque|icelandic|armenian|nepali|mongolian|bosnian|kazakh|"
    "albanian|swahili|galician|marathi|punjabi|sinhala|khmer|shona|yoruba|somali|afrikaans|occitan|"
    "georgian|belarusian|tajik|sindhi|gujarati|amharic|yiddish|lao|uzbek|faroese|haitian creole|"
    "pashto|turkmen|nynorsk|maltese|sanskrit|luxembourgish|myanmar|tibetan|tagalog|malagasy|assamese|"
    "tatar|hawaiian|lingala|hausa|bashkir|javanese|sundanese|cantonese"
).split("|")
LANGUAGE_NAMES = dict(zip(WHISPER_LANGUAGES, _NAMES, strict=True))


class ResponseFormat(enum.StrEnum):
    """``response_format`` of transcriptions and translations."""

    JSON = "json"
    TEXT = "text"
    SRT = "srt"
    VTT = "vtt"
    VERBOSE_JSON = "verbose_json"


class Granularity(enum.StrEnum):
    """``timestamp_granularities[]``: segment times (the default) and word times."""

    SEGMENT = "segment"
    WORD = "word"


class Transcription(msgspec.Struct, frozen=True, kw_only=True):
    """``json``: the text only."""

    text: str


class VerboseWord(msgspec.Struct, frozen=True, kw_only=True):
    """A word with its times (``timestamp_granularities[]=word``)."""

    word: str
    start: float
    end: float


class VerboseSegment(msgspec.Struct, frozen=True, kw_only=True):
    """A segment in Whisper's shape (see the module docstring for the derived fields)."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class VerboseTranscription(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``verbose_json``: text with segments, and words when asked."""

    task: Literal["transcribe", "translate"]
    #: Whisper's English name of the language (``english``), as OpenAI answers.
    language: str
    duration: float
    text: str
    segments: list[VerboseSegment] | None = None
    words: list[VerboseWord] | None = None


class TextDeltaEvent(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="transcript.text.delta"
):
    """More text of a streamed transcription."""

    delta: str


class TextDoneEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="transcript.text.done"):
    """The end of a streamed transcription, with all of its text."""

    text: str


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What went wrong: a message, OpenAI's error type, the request field at fault, MAIE's code.

    When the request made a task (it timed out or failed), its id and status URL come too, so a
    client can follow it on ``/v1/status``; the SDK keeps unknown fields in ``error.body``.
    """

    message: str
    type: str
    param: str | None
    code: str | None
    task_id: str | None = None
    status_url: str | None = None


class ErrorResponse(msgspec.Struct, frozen=True, kw_only=True):
    """``{"error": {"message", "type", "param", "code"}}``: the SDK raises its own class by status."""

    error: ErrorBody


class ModelCard(msgspec.Struct, frozen=True, kw_only=True):
    """One model of ``GET /models``."""

    id: str
    created: int
    owned_by: str
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /models``."""

    data: list[ModelCard]
    object: Literal["list"] = "list"


def language_name(code: str | None) -> str:
    """``en`` → ``english``; an unknown code is returned as it is, no code as ``unknown``."""
    if not code:
        return "unknown"
    return LANGUAGE_NAMES.get(code.lower(), code)


def _compression_ratio(text: str) -> float:
    """Whisper's gzip test of repetitive output: bytes over zlib-compressed bytes."""
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _verbose_segment(segment: Segment, temperature: float) -> VerboseSegment:
    confidence = segment.confidence
    return VerboseSegment(
        id=segment.id - 1,  # OpenAI numbers segments from 0
        seek=round(segment.start * 100),
        start=segment.start,
        end=segment.end,
        text=segment.text,
        tokens=[],
        temperature=temperature,
        avg_logprob=math.log(confidence) if confidence else 0.0,
        compression_ratio=_compression_ratio(segment.text),
        no_speech_prob=0.0,
    )


def transcription_body(
    segments: Sequence[Segment],
    *,
    response_format: ResponseFormat,
    language: str | None,
    duration_s: float,
    granularities: Iterable[Granularity] = (),
    task: Literal["transcribe", "translate"] = "transcribe",
    temperature: float = 0.0,
) -> tuple[bytes, str]:
    """The body and media type of a transcription (or translation) answer.

    Args:
        segments: The transcript, in time order.
        response_format: What the client asked for.
        language: ISO code of the transcript (``en`` for translations).
        duration_s: Length of the recording.
        granularities: ``timestamp_granularities[]`` (``verbose_json`` only; none means segments).
        task: ``transcribe`` or ``translate``.
        temperature: The first decoding temperature, reported on every segment.
    """
    text = " ".join(s.text.strip() for s in segments if s.text.strip())
    if response_format == ResponseFormat.TEXT:
        return (text + "\n").encode(), MEDIA_TYPES[ExportFormat.TXT]
    if response_format == ResponseFormat.SRT:
        return to_srt(segments).encode(), MEDIA_TYPES[ExportFormat.SRT]
    if response_format == ResponseFormat.VTT:
        return to_vtt(segments).encode(), MEDIA_TYPES[ExportFormat.VTT]
    if response_format == ResponseFormat.JSON:
        return msgspec.json.encode(Transcription(text=text)), "application/json"
    wanted = set(granularities) or {Granularity.SEGMENT}
    body = VerboseTranscription(
        task=task,
        language=language_name(language),
        duration=duration_s,
        text=text,
        segments=[_verbose_segment(s, temperature) for s in segments]
        if Granularity.SEGMENT in wanted
        else None,
        words=[VerboseWord(word=w.word, start=w.start, end=w.end) for s in segments for w in s.words or []]
        if Granularity.WORD in wanted
        else None,
    )
    return msgspec.json.encode(body), "application/json"


def sse(event: TextDeltaEvent | TextDoneEvent | ErrorResponse) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line (the SDK reads ``data`` only)."""
    return b"data: " + msgspec.json.encode(event) + b"\n\n"


def stream_events(texts: Iterable[str]) -> Iterator[bytes]:
    """The events of a streamed transcription: a delta per piece of text, then the whole text.

    Pieces are segment texts as they become final; deltas carry the joining space, so a client
    that concatenates deltas gets the ``done`` text.
    """
    done = ""
    for text in texts:
        piece = text.strip()
        if not piece:
            continue
        delta = piece if not done else " " + piece
        done += delta
        yield sse(TextDeltaEvent(delta=delta))
    yield sse(TextDoneEvent(text=done))


def error_type(status: int) -> str:
    """OpenAI's error ``type`` for an HTTP status."""
    if status == 401:  # noqa: PLR2004 - HTTP statuses are their own names
        return "authentication_error"
    if status == 403:  # noqa: PLR2004
        return "permission_error"
    if status == 429:  # noqa: PLR2004
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"  # noqa: PLR2004


def error_body(error: MaieError, *, param: str | None = None, task_id: str | None = None) -> ErrorResponse:
    """A MAIE error as OpenAI's error object; ``code`` is MAIE's own (``queue_full``...)."""
    return ErrorResponse(
        error=ErrorBody(
            message=error.detail,
            type=error_type(error.status_code),
            param=param,
            code=error.code,
            task_id=task_id,
            status_url=f"/v1/status/{task_id}" if task_id else None,
        )
    )


def error_response(
    error: MaieError, *, param: str | None = None, task_id: str | None = None
) -> tuple[int, bytes]:
    """A MAIE error as OpenAI's error body, with the status the SDK maps to its exception classes."""
    return error.status_code, msgspec.json.encode(error_body(error, param=param, task_id=task_id))


#: Separates a backend from its model variant in a model id (``whisper:large``), as workers name them.
VARIANT_SEPARATOR = ":"


def model_id(backend: str, variant: str | None = None) -> str:
    """The OpenAI model id of a backend (its default model) or of one of its variants."""
    return backend if variant is None else f"{backend}{VARIANT_SEPARATOR}{variant}"


def model_list(models: Iterable[ModelInfo], *, created: int) -> ModelList:
    """``GET /models``: each available backend by id (``whisper-1`` too for Whisper), then its variants.

    A backend's id means its default model; ``<backend>:<variant>`` names a model variant
    (``MAIE_WHISPER_MODELS``). Unavailable backends and variants are left out.
    """
    cards: list[ModelCard] = []
    for info in models:
        if not info.available:
            continue
        cards.append(ModelCard(id=info.backend_id, created=created, owned_by="maie"))
        if info.backend_id == "whisper":
            cards.append(ModelCard(id=WHISPER_ALIAS, created=created, owned_by="maie"))
        cards += [
            ModelCard(id=model_id(info.backend_id, v.name), created=created, owned_by="maie")
            for v in info.variants or []
            if v.available
        ]
    return ModelList(data=cards)


def resolve_model(model: str, backends: Iterable[str]) -> tuple[str, str | None]:
    """The backend and model variant a request's ``model`` means.

    ``whisper-1`` is Whisper's default model, ``<backend>`` a backend's, ``<backend>:<variant>`` one
    of its variants (whether the variant exists is for the backend's registry to say).

    Raises:
        ModelNotFoundError: naming the backends there are (404, as OpenAI answers an unknown model).
    """
    known = list(backends)
    backend, _, variant = ("whisper" if model == WHISPER_ALIAS else model).partition(VARIANT_SEPARATOR)
    if backend not in known or (model.endswith(VARIANT_SEPARATOR) and not variant):
        raise ModelNotFoundError(
            f"the model {model[:64]!r} does not exist; models are {', '.join([*known, WHISPER_ALIAS])} "
            "and <backend>:<variant> for the variants GET /openai/v1/models lists",
            extra={"param": "model"},
        )
    return backend, variant or None
