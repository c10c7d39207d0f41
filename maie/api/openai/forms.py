"""The multipart forms of OpenAI's audio routes, and what they mean as a MAIE submission.

Fields are OpenAI's (``openai.resources.audio``): ``file``, ``model``, ``language``, ``prompt``,
``response_format``, ``temperature``, ``timestamp_granularities[]`` and ``stream``. Fields of
OpenAI's newer models that MAIE has no use for (``chunking_strategy``, ``include[]``...) are
ignored, as unknown form fields are. The submission is MAIE's own (``/v1/process``'s fields), so
the same validation, limits and tenant rules apply, and the task is an ordinary one.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.datastructures import UploadFile

from maie.errors import InvalidRequestError
from maie.openai_formats import Granularity, ResponseFormat
from maie.schemas import Feature, SubmissionOptions

__all__ = ["GRANULARITIES_FIELD", "TranscriptionForm", "TranslationForm", "submission_of"]

#: The form name of the timestamp granularities, as OpenAI's SDKs send the list.
GRANULARITIES_FIELD = "timestamp_granularities[]"

Temperature = Annotated[
    float,
    msgspec.Meta(
        ge=0,
        le=1,
        description="Sampling temperature, 0-1. Accepted for compatibility; MAIE decodes with its "
        "configured temperatures (MAIE_WHISPER_TEMPERATURE), which verbose_json reports",
    ),
]


class TranslationForm(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /openai/v1/audio/translations``: speech in any language to English text (Whisper)."""

    #: The recording: any container PyAV can demux with an audio stream.
    file: UploadFile
    #: ``whisper-1`` or ``whisper`` (the default Whisper model), ``whisper:<variant>``, or another
    #: backend of ``GET /openai/v1/models`` (those without translation answer 422).
    model: str
    #: Text priming the spelling and style (``initial_prompt``).
    prompt: str | None = None
    response_format: ResponseFormat = ResponseFormat.JSON
    temperature: Temperature | None = None


class TranscriptionForm(TranslationForm, frozen=True, kw_only=True):
    """``POST /openai/v1/audio/transcriptions``."""

    #: ISO 639-1 code of the spoken language; default: detect.
    language: str | None = None
    #: ``segment`` and/or ``word``, with ``response_format=verbose_json``.
    timestamp_granularities: list[Granularity] | Granularity | None = msgspec.field(
        default=None, name=GRANULARITIES_FIELD
    )
    #: Answer with server-sent events: ``transcript.text.delta`` per segment, then ``transcript.text.done``.
    stream: bool | None = None

    def granularities(self) -> list[Granularity]:
        """The timestamp granularities asked for, as a list."""
        given = self.timestamp_granularities
        if given is None:
            return []
        return [given] if isinstance(given, Granularity) else list(dict.fromkeys(given))


def submission_of(
    form: TranslationForm, *, backend: str, variant: str | None, translate: bool
) -> SubmissionOptions:
    """The MAIE submission an OpenAI request makes: a raw transcript by ``backend``.

    Raises:
        InvalidRequestError: timestamp granularities asked for another format than verbose_json.
    """
    granularities = form.granularities() if isinstance(form, TranscriptionForm) else []
    if granularities and form.response_format != ResponseFormat.VERBOSE_JSON:
        raise InvalidRequestError(
            f"{GRANULARITIES_FIELD} needs response_format=verbose_json, got {form.response_format.value}",
            extra={"param": GRANULARITIES_FIELD},
        )
    return SubmissionOptions(
        features=[Feature.RAW_TRANSCRIPT.value],
        asr_backend=backend,
        model=variant,
        language=form.language if isinstance(form, TranscriptionForm) else None,
        word_timestamps=True if Granularity.WORD in granularities else None,
        initial_prompt=form.prompt,
        task="translate" if translate else None,
    )
