"""The one list of submission fields: what a client may ask for with a recording.

:class:`SubmissionOptions` is the list. Everything else follows it: the multipart forms of
POST /v1/process and /v1/batches (``maie.api.intake.form``) and the record of a validated request
(:class:`~maie.schemas.TaskRequest`) subclass it, the Python client's ``SubmitOptions`` is it, and
``maie submit`` makes one flag per field from it, with each field's description as help. Adding a
field is one line here plus its validation in ``maie.api.intake.form.validate_request`` (a field
that needs none is passed through as sent). ``tests/unit/test_submission_fields.py`` checks that
every place agrees, and names the two that cannot follow by themselves: the client's typed
keywords (``SubmitFields``) and the field table of docs/api.md.

Field order is the order of the encoded JSON; new fields go at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec

from maie.schemas.base import Frozen

__all__ = ["SubmissionOptions"]


class SubmissionOptions(Frozen, frozen=True, kw_only=True):
    """The options of a submission; ``None`` (left out) leaves each to the server's default."""

    features: Annotated[
        Sequence[str] | None,
        msgspec.Meta(
            description="Features, comma-separated: raw_transcript, clean_transcript, summary, "
            "enhancement_metrics; default clean_transcript,summary"
        ),
    ] = None
    template_id: Annotated[
        str | None, msgspec.Meta(description="Summary template, required with summary (GET /v1/templates)")
    ] = None
    asr_backend: Annotated[
        str | None, msgspec.Meta(description="ASR backend (GET /v1/models); default MAIE_ASR_BACKEND")
    ] = None
    language: Annotated[
        str | None, msgspec.Meta(description="ISO 639-1 code of the spoken language; default: detect")
    ] = None
    word_timestamps: Annotated[
        bool | None, msgspec.Meta(description="Word-level timestamps (backends with word_timestamps)")
    ] = None
    callback_url: Annotated[
        str | None, msgspec.Meta(description="Webhook URL called when the task finishes")
    ] = None
    hotwords: Annotated[
        str | None,
        msgspec.Meta(description="Words or phrases the ASR should favour (backends with custom_vocabulary)"),
    ] = None
    initial_prompt: Annotated[
        str | None,
        msgspec.Meta(
            description="Text that primes the ASR's spelling and style (backends with custom_vocabulary)"
        ),
    ] = None
    beam_size: Annotated[
        int | None, msgspec.Meta(description="Beam width of the ASR decoder, 1-20 (backends with beam_size)")
    ] = None
    model: Annotated[
        str | None,
        msgspec.Meta(
            description="Model variant of the ASR backend (GET /v1/models: variants); default: the first "
            "of MAIE_WHISPER_MODELS"
        ),
    ] = None
    diarize: Annotated[
        bool | None, msgspec.Meta(description="Label who spoke when (speakers on segments and words)")
    ] = None
    diarization_backend: Annotated[
        str | None,
        msgspec.Meta(
            description="Diarization backend (GET /v1/models: diarizers), with diarize; default "
            "MAIE_DIARIZATION_BACKEND"
        ),
    ] = None
    num_speakers: Annotated[
        int | None,
        msgspec.Meta(description="Exact number of speakers, 1-32, with diarize; default: found in the audio"),
    ] = None
    min_speakers: Annotated[
        int | None, msgspec.Meta(description="Fewest speakers to find, 1-32, with diarize")
    ] = None
    max_speakers: Annotated[
        int | None, msgspec.Meta(description="Most speakers to find, 1-32, with diarize")
    ] = None
    task: Annotated[
        str | None,
        msgspec.Meta(
            description="transcribe (default), or translate: the transcript in English (backends with "
            "translate, and multilingual models)"
        ),
    ] = None
