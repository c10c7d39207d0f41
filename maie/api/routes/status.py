"""GET /v1/status/{task_id}: cheap to poll (ETag, 304, Retry-After), tenant-isolated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec

from maie.api.etags import not_modified, not_modified_response
from maie.api.guards import tenant_of
from maie.api.queries import load_task, status_body, status_etag
from maie.schemas import ErrorBody, StatusResponse

if TYPE_CHECKING:
    from maie.api.services import Services

__all__ = ["StatusController"]


class StatusController(Controller):
    """Task status."""

    path = "/status"
    tags = ("tasks",)

    @get(
        "/{task_id:str}",
        summary="Task status and, once complete, its results",
        responses={
            200: ResponseSpec(data_container=StatusResponse, description="The task"),
            304: ResponseSpec(data_container=None, description="Unchanged since the ETag in If-None-Match"),
            404: ResponseSpec(data_container=ErrorBody, description="No such task for this key"),
        },
    )
    async def status(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Return the task's status; ``If-None-Match`` with the last ``ETag`` answers 304.

        The only parameter is the request: the services come from the app's state and the id
        from the matched path, because resolving them as a dependency and a path parameter cost
        this most polled route a signature model and a provider call per request.
        """
        services: Services = request.app.state.services
        task_id: str = request.scope["path_params"]["task_id"]
        record = await load_task(services, task_id, tenant_of(request))
        etag = status_etag(record)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if not record.status.terminal:
            headers["Retry-After"] = str(services.settings.server.status_retry_after_s)
        if not_modified(request, etag):
            return not_modified_response(headers)
        body = await status_body(services, record, etag)
        return Response(content=body, media_type="application/json", headers=headers)
