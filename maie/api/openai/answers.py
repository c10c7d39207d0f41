"""What an OpenAI audio request answers once its task was queued: the result, or why there is none.

The request waits for its task (:class:`~maie.api.waiting.TaskWaiter`, woken by the worker's
announcement) for up to ``MAIE_SYNC_TIMEOUT_S``. A finished task's segments are rendered in the
asked format (:mod:`maie.openai_formats`); a failed task answers with its error code and the
status of that code; a task still running answers 504 ``result_timeout``. Both name the task
(``task_id``, ``status_url``, and the ``X-MAIE-Task-ID`` header on every answer), so a client can
follow it on ``/v1/status`` instead of sending the recording again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from litestar import Response

from maie.api.openai.errors import NO_RETRY, error_answer, status_of_code
from maie.errors import NotFoundError, ResultTimeoutError
from maie.openai_formats import (
    ErrorBody,
    ErrorResponse,
    Granularity,
    ResponseFormat,
    error_body,
    error_type,
    sse,
    stream_events,
    transcription_body,
)
from maie.schemas import TaskStatus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from maie.api.services import Services
    from maie.schemas import ResultVersion, TaskRecord

__all__ = ["TASK_HEADER", "Outcome", "answer", "await_outcome", "stream_answer"]

#: Header naming the task behind every answer of the audio routes.
TASK_HEADER: Final = "X-MAIE-Task-ID"
#: Seconds between two keep-alive comments of a streamed answer while the task runs.
KEEPALIVE_S: Final = 15.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a task ended for its request: a result, or an error to answer with."""

    task_id: str
    result: ResultVersion | None = None
    status: int = 200
    error: ErrorResponse | None = None


async def await_outcome(services: Services, task_id: str, timeout_s: float) -> Outcome:
    """Wait for the task for up to ``timeout_s`` and say what came of it."""
    record = await services.waiter.wait(task_id, timeout_s)
    return await _outcome(services, record)


async def _outcome(services: Services, record: TaskRecord) -> Outcome:
    task_id = record.task_id
    if record.status == TaskStatus.COMPLETE and record.result_version is not None:
        result = await services.store.get_result(task_id, record.result_version)
        if result is not None:
            return Outcome(task_id, result=result)
        return _gone(task_id)
    if record.status == TaskStatus.FAILED:
        code = record.error_code or "internal_error"
        return Outcome(
            task_id,
            status=status_of_code(code),
            error=ErrorResponse(
                error=ErrorBody(
                    message=f"task {task_id} failed in {record.failed_stage or 'the pipeline'}: "
                    f"{record.error}",
                    type=error_type(status_of_code(code)),
                    param=None,
                    code=code,
                    task_id=task_id,
                    status_url=f"/v1/status/{task_id}",
                )
            ),
        )
    timeout = ResultTimeoutError(
        f"task {task_id} is still {record.status.value} after MAIE_SYNC_TIMEOUT_S="
        f"{services.settings.server.sync_timeout_s:g} s; it goes on: follow it at /v1/status/{task_id} "
        f"and read its transcript at /v1/tasks/{task_id}/transcript.json"
    )
    return Outcome(task_id, status=timeout.status_code, error=error_body(timeout, task_id=task_id))


def _gone(task_id: str) -> Outcome:
    gone = NotFoundError(f"the result of task {task_id} is gone (expired)")
    return Outcome(task_id, status=gone.status_code, error=error_body(gone, task_id=task_id))


def _first_temperature(result: ResultVersion) -> float:
    asr = result.versions.asr_backend
    temperature = asr.decoding_params.get("temperature") if asr is not None else None
    if isinstance(temperature, list) and temperature:
        temperature = temperature[0]
    return float(temperature) if isinstance(temperature, int | float) else 0.0


def answer(
    outcome: Outcome,
    *,
    response_format: ResponseFormat,
    granularities: list[Granularity],
    task: Literal["transcribe", "translate"],
) -> Response[bytes]:
    """The HTTP answer of a request whose task ended (or whose wait timed out)."""
    headers = {TASK_HEADER: outcome.task_id}
    if outcome.error is not None or outcome.result is None:
        body = outcome.error or error_body(ResultTimeoutError("no result"), task_id=outcome.task_id)
        return error_answer(body, outcome.status, {**headers, **NO_RETRY})
    result = outcome.result
    content, media_type = transcription_body(
        result.results.segments or [],
        response_format=response_format,
        language="en" if task == "translate" else result.results.language,
        duration_s=result.metrics.input_duration_seconds if result.metrics else 0.0,
        granularities=granularities,
        task=task,
        temperature=_first_temperature(result),
    )
    return Response(content, status_code=200, media_type=media_type, headers=headers)


async def stream_answer(services: Services, task_id: str) -> AsyncIterator[bytes]:
    """Server-sent events of a streamed transcription: keep-alives while the task runs, then its text.

    A task that fails or outlasts ``MAIE_SYNC_TIMEOUT_S`` ends the stream with an error event
    (``{"error": {...}}``, which OpenAI's SDKs raise as ``APIError``) naming the task.
    """
    deadline = time.monotonic() + services.settings.server.sync_timeout_s
    while True:
        remaining = deadline - time.monotonic()
        record = await services.waiter.wait(task_id, max(0.0, min(KEEPALIVE_S, remaining)))
        if record.status.terminal or remaining <= KEEPALIVE_S:
            break
        yield b": keep-alive\n\n"
    outcome = await _outcome(services, record)
    if outcome.result is None:
        yield sse(outcome.error or error_body(ResultTimeoutError("no result"), task_id=task_id))
        return
    for event in stream_events(segment.text for segment in outcome.result.results.segments or []):
        yield event
