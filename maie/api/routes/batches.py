"""Batches: POST /v1/batches, GET and DELETE /v1/batches/{id}, GET /v1/batches/{id}/export.

A batch is one upload of one archive (zip, tar, tar.gz) or of several ``file`` parts, and/or a list
of recordings' ``url``s, with the options of /v1/process applied to every recording in it; each
recording becomes a task.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any

import structlog
from litestar import Controller, Request, Response, delete, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Stream

from maie.api.admission import AdmissionMiddleware, queue_slot_guard, slots_of
from maie.api.batch_export import EXPORT_MEDIA_TYPES, BatchExportFormat, export_rows, render_rows
from maie.api.deletion import forget
from maie.api.guards import tenant_of
from maie.api.intake import BatchForm, IdempotencyClaim, accept_batch, validate_request
from maie.api.intake.form import batch_form_limits
from maie.api.intake.idempotency import pending_ttl_s
from maie.api.intake.multipart import form_reader
from maie.api.intake.urls import batch_urls
from maie.api.openapi import BatchExportOperation, error_responses
from maie.api.queries import load_batch, summary_of
from maie.api.request_id import request_id_of
from maie.errors import NotFoundError, UnprocessableError
from maie.schemas import BatchAccepted, BatchStatus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.di import NamedDependency
    from litestar.params import FromPath

    from maie.api.services import Services

__all__ = ["BatchesController"]

log = structlog.get_logger(__name__)


class BatchesController(Controller):
    """Batches of recordings."""

    path = "/"
    tags = ("batches",)

    @post(
        "/",
        status_code=202,
        guards=[queue_slot_guard],
        middleware=[AdmissionMiddleware()],
        before_request=form_reader(batch_form_limits),
        responses=error_responses(400, 409, 413, 415, 422),
        summary="Submit an archive, several recordings or several URLs as one batch",
        description=(
            "Archives are unpacked with limits on entries, unpacked size and compression ratio; "
            "members that are not usable audio, and URLs that may not be fetched, are listed in "
            "`skipped` with the reason."
        ),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[BatchForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        services: NamedDependency[Services],
    ) -> Response[BatchAccepted]:
        """Accept a batch: every usable recording becomes a queued task."""
        parts = data.file or []
        if not parts and not data.url:
            raise UnprocessableError("send at least one `file` (recording or archive) or `url`")
        task_request = await validate_request(data, services, filename=parts[0].filename if parts else None)
        sent, links, refused = await batch_urls(data.url, services.settings)
        tenant = tenant_of(request)
        claim = IdempotencyClaim.of(
            request,
            services.store,
            tenant,
            kind="batch",
            request=task_request,
            urls=sent,
            uploads=parts,
            owner=services.intake_owner,
            # A batch probes each of its recordings: its intake may take that many times longer.
            pending_ttl_s=pending_ttl_s(services.settings) * max(1, len(parts)),
        )
        accepted = await accept_batch(
            services,
            tenant=tenant,
            parts=parts,
            request=task_request,
            request_id=request_id_of(request),
            idempotency=claim,
            slots=slots_of(request),
            urls=links,
            refused_urls=refused,
        )
        return Response(accepted.body, status_code=202, headers=accepted.headers)

    @get("/{batch_id:str}", summary="A batch: counts by status and every task")
    async def status(
        self, request: Request[Any, Any, Any], batch_id: FromPath[str], services: NamedDependency[Services]
    ) -> BatchStatus:
        """Return the batch's tasks and how many are in each status."""
        batch = await load_batch(services, batch_id, tenant_of(request))
        records = await services.store.get_many(batch.task_ids)
        summaries = [summary_of(r) for r in records if r is not None]
        counts = Counter(s.status.value for s in summaries)
        if len(summaries) < len(records):
            counts["EXPIRED"] = len(records) - len(summaries)
        return BatchStatus(
            batch_id=batch.batch_id,
            created_at=batch.created_at,
            total=len(batch.task_ids),
            counts=dict(counts),
            finished=all(r is None or r.status.terminal for r in records),
            tasks=summaries,
            skipped=batch.skipped,
        )

    @delete(
        "/{batch_id:str}",
        status_code=204,
        responses=error_responses(404),
        summary="Delete a batch and every task of it (records, result versions, artifacts, audio)",
        description=(
            "Irreversible; each task is deleted as by DELETE /v1/tasks/{task_id} (tasks still being "
            "processed stop, `task.deleted` webhooks). A second call, or another tenant's batch, "
            "answers 404."
        ),
    )
    async def delete_batch(
        self, request: Request[Any, Any, Any], batch_id: FromPath[str], services: NamedDependency[Services]
    ) -> Response[None]:
        """Delete one of the caller's batches with its tasks."""
        _, records = await services.store.delete_batch(batch_id, tenant=tenant_of(request))
        await forget(services, records, request_id=request_id_of(request), batch_id=batch_id)
        return Response(None, status_code=204)

    @get(
        "/{batch_id:str}/export",
        summary="One row per task: transcript, language, duration, summary fields",
        operation_class=BatchExportOperation,
    )
    async def export(
        self,
        request: Request[Any, Any, Any],
        batch_id: FromPath[str],
        services: NamedDependency[Services],
        format: Annotated[  # noqa: A002 - the query parameter is called format
            BatchExportFormat, Parameter(description="jsonl (one JSON object per line) or csv")
        ] = BatchExportFormat.JSONL,
    ) -> Stream:
        """Stream the rows of every task of the batch, in upload order."""
        batch = await load_batch(services, batch_id, tenant_of(request))
        fields: list[str] = []
        if batch.request.template_id:
            try:
                schema = services.templates.get(batch.request.template_id).schema
                fields = list(schema.get("properties", {}))
            except NotFoundError:
                log.warning("batch.export_template_missing", template_id=batch.request.template_id)

        async def rows() -> AsyncIterator[bytes]:
            header = True
            async for row in export_rows(services.store, batch):
                yield render_rows([row], format, fields, header=header)
                header = False

        # Litestar adds "; charset=utf-8" to text/* types itself.
        media_type = EXPORT_MEDIA_TYPES[format]
        return Stream(
            rows(),
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}.{format.value}"'},
        )
