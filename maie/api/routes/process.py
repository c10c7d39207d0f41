"""POST /v1/process: accept a recording (an upload or a URL) and a choice of features, start the pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, post
from litestar.enums import RequestEncodingType
from litestar.params import Body

from maie.api.admission import AdmissionMiddleware, queue_slot_guard, slots_of
from maie.api.guards import submission_rate_limit_guard, tenant_of
from maie.api.intake import IdempotencyClaim, ProcessForm, accept_task, validate_request
from maie.api.intake.form import PROCESS_FORM_LIMITS
from maie.api.intake.idempotency import pending_ttl_s
from maie.api.intake.multipart import form_reader
from maie.api.intake.urls import check_url, one_source
from maie.api.openapi import error_responses
from maie.api.request_id import request_id_of
from maie.schemas import ProcessAccepted  # noqa: TC001 - Litestar reads the handler's hints at runtime

if TYPE_CHECKING:
    from litestar.di import NamedDependency

    from maie.api.services import Services

__all__ = ["ProcessController"]


class ProcessController(Controller):
    """Submissions."""

    path = "/process"
    tags = ("tasks",)

    @post(
        "/",
        status_code=202,
        guards=[submission_rate_limit_guard, queue_slot_guard],
        middleware=[AdmissionMiddleware()],
        before_request=form_reader(lambda _: PROCESS_FORM_LIMITS),
        responses=error_responses(400, 409, 413, 415, 422),
        summary="Submit a recording",
        description=(
            "Streams the upload to disk, checks it is decodable audio, and queues the pipeline; or, "
            "with `url` instead of `file`, checks the URL's host and queues a fetch stage first."
        ),
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[ProcessForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        services: NamedDependency[Services],
    ) -> Response[ProcessAccepted]:
        """Accept a recording and start its pipeline."""
        source = one_source(data.file, data.url)
        if isinstance(source, str):
            link = await check_url(source, services.settings)
            task_request = await validate_request(data, services, filename=None, source_url=link.source_url)
        else:
            task_request = await validate_request(data, services, filename=source.filename)
        tenant = tenant_of(request)
        claim = IdempotencyClaim.of(
            request,
            services.store,
            tenant,
            kind="task",
            request=task_request,
            urls=[link.url] if isinstance(source, str) else [],
            uploads=[] if isinstance(source, str) else [source],
            owner=services.intake_owner,
            pending_ttl_s=pending_ttl_s(services.settings),
        )
        accepted = await accept_task(
            services,
            tenant=tenant,
            upload=link if isinstance(source, str) else source,
            request=task_request,
            request_id=request_id_of(request),
            idempotency=claim,
            slots=slots_of(request),
        )
        return Response(accepted.body, status_code=202, headers=accepted.headers)
