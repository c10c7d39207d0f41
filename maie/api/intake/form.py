"""The form of a submission (POST /v1/process and /v1/batches) and its validation.

The forms are the submission fields (:class:`~maie.schemas.SubmissionOptions`) plus the recording:
an upload (``file``) or a link to it (``url``, checked in :mod:`maie.api.intake.urls`).

Every field is checked before any file is written: malformed values are 400, a well-formed request
this server cannot serve (an unknown template, an unavailable backend or diarizer, hotwords for a
backend without them, contradicting speaker counts) is 422 naming what it can do instead.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from litestar.datastructures import UploadFile  # noqa: TC002 - Litestar reads the form's hints at runtime
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.params import Parameter

from maie.api.intake.asr_options import check_asr_options
from maie.api.intake.multipart import FORM_PARTS, FormLimits
from maie.api.intake.speakers import check_diarization
from maie.api.intake.uploads import check_filename
from maie.errors import BackendUnavailableError, InvalidRequestError, NotFoundError, UnprocessableError
from maie.outbound import MAX_URL_LENGTH
from maie.pipeline.asr.registry import REGISTRY
from maie.schemas import Feature, SubmissionOptions, TaskRequest
from maie.webhooks.targets import check_callback

if TYPE_CHECKING:
    from collections.abc import Sequence

    from maie.api.services import Services
    from maie.config import Settings
    from maie.schemas import ModelInfo

__all__ = [
    "AUTO_LANGUAGE",
    "DEFAULT_FEATURES",
    "LLM_FEATURES",
    "PROCESS_FORM_LIMITS",
    "BatchForm",
    "ProcessForm",
    "batch_form_limits",
    "parse_features",
    "validate_request",
]

#: Features of a request that names none.
DEFAULT_FEATURES = (Feature.CLEAN_TRANSCRIPT, Feature.SUMMARY)
#: Features that need an LLM backend.
LLM_FEATURES = frozenset({Feature.CLEAN_TRANSCRIPT, Feature.SUMMARY, Feature.ENHANCEMENT_METRICS})
#: ISO 639-1 (two letters) or the few three-letter codes Whisper knows (haw, yue).
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
#: ``language`` value that asks for detection, as leaving it out does.
AUTO_LANGUAGE = "auto"

#: The schema of a file part. An optional upload is documented as one that may be left out, not as
#: "a file or null": a form cannot send a null, and clients and schema tools send a nullable part
#: as a text field instead of a file.
_FILE = Schema(
    type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, content_media_type="application/octet-stream"
)
_OPTIONAL_FILE = Parameter(
    schema_extra={
        "one_of": None,
        "type": _FILE.type,
        "format": _FILE.format,
        "content_media_type": _FILE.content_media_type,
    }
)
_OPTIONAL_FILES = Parameter(
    min_items=1, schema_extra={"one_of": None, "type": OpenAPIType.ARRAY, "items": _FILE, "min_items": 1}
)


class ProcessForm(SubmissionOptions, frozen=True, kw_only=True):
    """Fields of POST /v1/process (multipart/form-data): the submission fields and the recording.

    The recording is ``file`` or ``url``, exactly one of them.
    """

    #: The recording: any container PyAV can demux with at least one audio stream.
    file: Annotated[UploadFile | None, _OPTIONAL_FILE] = None
    #: Or a link to it: the file itself, behind redirects or on a web page, fetched by the worker.
    url: str | None = None


class BatchForm(SubmissionOptions, frozen=True, kw_only=True):
    """Fields of POST /v1/batches (multipart/form-data): the parts plus the options of /v1/process.

    The options apply to every recording of the batch (a ``callback_url`` is called by each task).
    At least one ``file`` or ``url`` is needed; the two may mix.
    """

    #: One archive (zip, tar, tar.gz/bz2/xz), or several recordings; archives and recordings may mix.
    file: Annotated[list[UploadFile] | None, _OPTIONAL_FILES] = None
    #: Links to recordings: repeated fields, or several in one field, one per line.
    url: Annotated[list[str], Parameter(min_items=1)] | None = None


#: What the form of POST /v1/process may hold: one recording and the submission fields.
PROCESS_FORM_LIMITS = FormLimits()


def batch_form_limits(settings: Settings) -> FormLimits:
    """What the form of POST /v1/batches may hold: a part per recording, and URL lists.

    A batch has at most ``MAIE_BATCH_MAX_MEMBERS`` recordings, each a ``file`` part or a URL; the
    ``url`` fields (one URL per line) may hold that many URLs of the longest length accepted.
    """
    members = settings.batch.max_members
    return FormLimits(
        max_parts=members + FORM_PARTS,
        list_fields=frozenset({"url"}),
        list_bytes=members * (MAX_URL_LENGTH + 2),
        parts_setting=f"MAIE_BATCH_MAX_MEMBERS={members} recordings plus {FORM_PARTS} fields",
    )


def parse_features(values: Sequence[str] | None) -> list[Feature]:
    """Flatten repeated and comma-separated feature fields, in order, without duplicates.

    Raises:
        UnprocessableError: naming any unknown feature and the known ones.
    """
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    if not names:
        return list(DEFAULT_FEATURES)
    known = {f.value for f in Feature}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnprocessableError(
            f"unknown feature(s) {', '.join(map(repr, unknown))}; known features: {', '.join(sorted(known))}"
        )
    return list(dict.fromkeys(Feature(n) for n in names))


async def validate_request(
    form: SubmissionOptions, services: Services, *, filename: str | None, source_url: str | None = None
) -> TaskRequest:
    """Check every field (and the upload's ``filename``) before any file is written.

    A field this function does not check is passed on as the form parsed it (its type is checked).

    Args:
        form: The submission fields.
        services: The API's services.
        filename: The upload's name, a label.
        source_url: The recording's URL without credentials (checked already), a label too.

    Raises:
        InvalidRequestError: a malformed value (400).
        UnprocessableError: a well-formed request MAIE cannot serve (422).
    """
    settings: Settings = services.settings
    features = parse_features(form.features)
    needs_llm = sorted(f.value for f in LLM_FEATURES.intersection(features))
    if needs_llm and settings.llm.backend == "none":
        raise UnprocessableError(
            f"feature(s) {', '.join(needs_llm)} need an LLM backend and none is configured "
            "(MAIE_LLM_BACKEND=none); ask for features=raw_transcript, or configure an LLM backend "
            "as docs/configuration.md explains",
            extra={"features": needs_llm},
        )
    if Feature.SUMMARY in features:
        if not form.template_id:
            raise UnprocessableError("feature 'summary' needs a template_id; see GET /v1/templates")
        try:
            services.templates.get(form.template_id)
        except NotFoundError as exc:
            raise UnprocessableError(exc.detail) from exc
    backend = form.asr_backend or settings.asr.backend
    if backend not in REGISTRY.ids():
        raise BackendUnavailableError(
            f"unknown asr_backend {backend!r}; known backends: {', '.join(sorted(REGISTRY.ids()))}"
        )
    # Only the chosen backend (and variant) is checked: probing others (torch imports) would slow
    # every submit.
    variant, model = await anyio.to_thread.run_sync(_backend_info, backend, form.model, settings)
    if not model.available:
        chosen = f"model {variant!r} of asr_backend {backend!r}" if variant else f"asr_backend {backend!r}"
        raise BackendUnavailableError(f"{chosen} is unavailable on this server: {model.unavailable_reason}")
    language = form.language.strip().lower() if form.language else None
    if language == AUTO_LANGUAGE:
        language = None  # the same as no language: the backend detects it
    if language and not LANGUAGE_CODE.match(language):
        raise InvalidRequestError(
            f"language must be an ISO 639-1 code such as 'en', or 'auto' to detect it; got {form.language!r}"
        )
    callback_url = await check_callback(form.callback_url, settings) if form.callback_url else None
    diarization = await check_diarization(form, settings)
    asr_options = check_asr_options(
        model,
        language=language,
        word_timestamps=form.word_timestamps,
        hotwords=form.hotwords,
        initial_prompt=form.initial_prompt,
        beam_size=form.beam_size,
        task=form.task,
    )
    checked: dict[str, Any] = {
        "features": features,
        "template_id": form.template_id if Feature.SUMMARY in features else None,
        "asr_backend": backend,
        "language": language,
        "callback_url": callback_url,
        "hotwords": asr_options.hotwords,
        "initial_prompt": asr_options.initial_prompt,
        "beam_size": asr_options.beam_size,
        "model": variant,
        "diarize": diarization.diarize,
        "diarization_backend": diarization.diarization_backend,
        "num_speakers": diarization.num_speakers,
        "min_speakers": diarization.min_speakers,
        "max_speakers": diarization.max_speakers,
        "task": asr_options.task,
    }
    sent = {name: getattr(form, name) for name in SubmissionOptions.__struct_fields__}
    return TaskRequest(**{**sent, **checked}, filename=check_filename(filename), source_url=source_url)


def _backend_info(backend: str, name: str | None, settings: Settings) -> tuple[str | None, ModelInfo]:
    """The chosen variant's name (None for a backend without variants) and its checked info (blocking).

    Raises:
        UnprocessableError: an unknown variant name, or one for a backend without variants.
    """
    variant = REGISTRY.variant(backend, settings, (name or "").strip() or None)
    if variant is None:
        return None, REGISTRY.info(backend, settings)
    return variant.name, REGISTRY.info(backend, variant.settings)
