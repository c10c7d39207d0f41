"""Result versions: GET /v1/tasks/{id}/results and GET /v1/tasks/{id}/results/{version}.

Every completed pipeline run and every re-summarization is stored as an immutable version
(``maie:task:<id>:result:<n>``); the task record's ``result_version`` names the latest, which is
what GET /v1/status shows. A version never changes once written, so its answer carries a strong
``ETag`` and is cacheable by the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec

from maie.api.etags import json_with_etag
from maie.api.guards import tenant_of
from maie.api.queries import load_result, load_task
from maie.schemas import ErrorBody, ResultVersion, ResultVersionList

if TYPE_CHECKING:
    from litestar.di import NamedDependency
    from litestar.params import FromPath

    from maie.api.services import Services

__all__ = ["ResultsController"]


class ResultsController(Controller):
    """Result versions of a task."""

    path = "/tasks/{task_id:str}/results"
    tags = ("results",)

    @get("/", summary="List a task's result versions, oldest first")
    async def list_results(
        self, request: Request[Any, Any, Any], task_id: FromPath[str], services: NamedDependency[Services]
    ) -> ResultVersionList:
        """Return ``{version, created_at, kind, template_id}`` for every version."""
        record = await load_task(services, task_id, tenant_of(request))
        versions = await services.store.list_results(task_id, record.result_version or 0)
        return ResultVersionList(task_id=task_id, latest=record.result_version, versions=versions)

    @get(
        "/{version:int}",
        summary="One result version",
        responses={
            200: ResponseSpec(data_container=ResultVersion, description="The version"),
            304: ResponseSpec(data_container=None, description="Unchanged since the ETag in If-None-Match"),
            404: ResponseSpec(data_container=ErrorBody, description="No such task or version"),
        },
    )
    async def get_result(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[str],
        version: FromPath[int],
        services: NamedDependency[Services],
    ) -> Response[Any]:
        """Return result version ``version`` with its own ``versions`` block and metrics."""
        record = await load_task(services, task_id, tenant_of(request))
        body = msgspec.json.encode(await load_result(services, record, version))
        return json_with_etag(request, body, {"Cache-Control": "private, max-age=3600"})
