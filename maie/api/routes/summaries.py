"""POST /v1/tasks/{id}/summaries: summarize a finished task's transcript again, with no ASR.

A COMPLETE task, or a FAILED one whose transcription finished (its version 1 is ``partial``).

The job is a new ``summarize`` stage on the task (with its ``job_id`` and ``template_id``), run by
the worker's ``resummarize`` actor; its result is a new immutable version (``kind: "resummary"``)
and becomes the latest, which GET /v1/status shows. Earlier versions are never touched.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import structlog
from litestar import Controller, Request, Response, post
from litestar.openapi import ResponseSpec

from maie.actor_table import RESUMMARIZE
from maie.api.guards import admission_guard, tenant_of
from maie.api.queries import load_task
from maie.api.request_id import request_id_of
from maie.errors import NotFoundError, StoreUnavailableError, UnprocessableError
from maie.schemas import ErrorBody, StageName, StageRecord, SummaryAccepted, SummaryRequest

if TYPE_CHECKING:
    from litestar.di import NamedDependency
    from litestar.params import FromPath, JSONBody

    from maie.api.services import Services

__all__ = ["SummariesController"]

log = structlog.get_logger(__name__)


class SummariesController(Controller):
    """Re-summarization of stored transcripts."""

    path = "/tasks/{task_id:str}/summaries"
    tags = ("results",)

    @post(
        "/",
        status_code=202,
        guards=[admission_guard],
        summary="Summarize a finished task's transcript again with a template (no ASR)",
        responses={
            202: ResponseSpec(data_container=SummaryAccepted, description="The job is queued"),
            409: ResponseSpec(
                data_container=ErrorBody,
                description="The task has no transcript: not finished, or it failed before transcription",
            ),
            422: ResponseSpec(data_container=ErrorBody, description="Unknown template, or no LLM backend"),
        },
    )
    async def summarize_again(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[str],
        data: JSONBody[SummaryRequest],
        services: NamedDependency[Services],
    ) -> Response[SummaryAccepted]:
        """Queue a summary of the stored transcript into a new result version."""
        tenant = tenant_of(request)
        await load_task(services, task_id, tenant)  # 404 for a malformed, unknown or foreign id
        if services.settings.llm.backend == "none":
            raise UnprocessableError(
                "summaries need an LLM backend and none is configured (MAIE_LLM_BACKEND=none); "
                "configure one as docs/configuration.md explains"
            )
        try:
            services.templates.get(data.template_id)
        except NotFoundError as exc:
            raise UnprocessableError(exc.detail) from exc
        job_id = str(uuid.uuid4())
        job = StageRecord(name=StageName.SUMMARIZE, job_id=job_id, template_id=data.template_id)
        record = await services.store.add_job(task_id, job, tenant=tenant)
        message = RESUMMARIZE.message(task_id, job_id, request_id=request_id_of(request))
        try:
            await services.enqueue(message)
        except StoreUnavailableError:
            try:
                await services.store.remove_job(task_id, job_id)
            except StoreUnavailableError:
                log.warning("summary_job.remove_failed", job_id=job_id)
            raise
        log.info("summary_job.accepted", task_id=task_id, job_id=job_id, template_id=data.template_id)
        status_url = f"/v1/status/{record.task_id}"
        return Response(
            SummaryAccepted(
                task_id=record.task_id,
                job_id=job_id,
                template_id=data.template_id,
                status_url=status_url,
                results_url=f"/v1/tasks/{record.task_id}/results",
            ),
            status_code=202,
            headers={"Location": status_url},
        )
