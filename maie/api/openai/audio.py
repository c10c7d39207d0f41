"""``POST /openai/v1/audio/transcriptions`` and ``/translations``: OpenAI's audio API over MAIE's pipeline.

A request is a submission like ``POST /v1/process`` (the same guards, queue slot, rate limits,
validation and intake, so the task is an ordinary one of the tenant's, in its list and on
``/v1/status``) that then waits for its task and answers with the transcript in the format asked
(:mod:`maie.api.openai.answers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio.to_thread
from litestar import Controller, Request, Response, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Stream

from maie.api.admission import AdmissionMiddleware, queue_slot_guard, slots_of
from maie.api.guards import submission_rate_limit_guard, tenant_of
from maie.api.intake import IdempotencyClaim, accept_task, validate_request
from maie.api.openai.answers import TASK_HEADER, answer, await_outcome, stream_answer
from maie.api.openai.docs import AUDIO_JSON, AudioOperation, openai_error_responses
from maie.api.openai.forms import TranscriptionForm, TranslationForm, submission_of
from maie.api.request_id import request_id_of
from maie.errors import ModelNotFoundError, UnprocessableError
from maie.openai_formats import resolve_model
from maie.pipeline.asr.registry import REGISTRY

if TYPE_CHECKING:
    from litestar.di import NamedDependency

    from maie.api.services import Services
    from maie.config import Settings

__all__ = ["AudioController"]

_SUBMISSION: dict[str, Any] = {
    "status_code": 200,
    "guards": [submission_rate_limit_guard, queue_slot_guard],
    "middleware": [AdmissionMiddleware()],
    "operation_class": AudioOperation,
    "responses": {200: AUDIO_JSON, **openai_error_responses(400, 404, 413, 415, 422, 504)},
}


class AudioController(Controller):
    """OpenAI's audio routes."""

    path = "/audio"
    tags = ("openai",)

    @post(
        "/transcriptions",
        summary="Transcribe a recording (OpenAI-compatible)",
        description=(
            "OpenAI's `audio.transcriptions.create`: the recording is queued like `POST /v1/process` "
            "(raw transcript by the backend `model` names) and the answer waits for its result, up to "
            "MAIE_SYNC_TIMEOUT_S. `stream=true` answers with server-sent events instead."
        ),
        **_SUBMISSION,
    )
    async def transcriptions(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[TranscriptionForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        services: NamedDependency[Services],
    ) -> Response[Any]:
        """Transcribe ``file`` with ``model``."""
        return await _submit(request, data, services, task="transcribe")

    @post(
        "/translations",
        summary="Translate a recording into English text (OpenAI-compatible)",
        description=(
            "OpenAI's `audio.translations.create`: Whisper's translate task (`task=translate` of "
            "`POST /v1/process`). Backends that cannot translate answer 422."
        ),
        **_SUBMISSION,
    )
    async def translations(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[TranslationForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        services: NamedDependency[Services],
    ) -> Response[Any]:
        """Translate ``file`` into English with ``model``."""
        return await _submit(request, data, services, task="translate")


async def _submit(
    request: Request[Any, Any, Any],
    form: TranslationForm,
    services: Services,
    *,
    task: Literal["transcribe", "translate"],
) -> Response[Any]:
    backend, variant = resolve_model(form.model.strip(), REGISTRY.ids())
    await anyio.to_thread.run_sync(_check_variant, backend, variant, services.settings)
    submission = submission_of(form, backend=backend, variant=variant, translate=task == "translate")
    task_request = await validate_request(submission, services, filename=form.file.filename)
    tenant = tenant_of(request)
    accepted = await accept_task(
        services,
        tenant=tenant,
        upload=form.file,
        request=task_request,
        request_id=request_id_of(request),
        idempotency=IdempotencyClaim.of(request, services.store, tenant, kind="task", request=task_request),
        slots=slots_of(request),
    )
    task_id = accepted.body.task_id
    if isinstance(form, TranscriptionForm) and form.stream:
        return Stream(
            stream_answer(services, task_id),
            media_type="text/event-stream",
            headers={TASK_HEADER: task_id, "Cache-Control": "no-cache"},
        )
    outcome = await await_outcome(services, task_id, services.settings.server.sync_timeout_s)
    granularities = form.granularities() if isinstance(form, TranscriptionForm) else []
    return answer(outcome, response_format=form.response_format, granularities=granularities, task=task)


def _check_variant(backend: str, variant: str | None, settings: Settings) -> None:
    """A variant the backend does not have is an unknown model (404), as OpenAI answers one.

    Raises:
        ModelNotFoundError: naming the backend's variants.
    """
    if variant is None:
        return
    try:
        REGISTRY.variant(backend, settings, variant)
    except UnprocessableError as exc:
        raise ModelNotFoundError(exc.detail, extra={"param": "model", **exc.extra}) from exc
