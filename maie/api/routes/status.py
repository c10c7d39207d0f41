"""GET /v1/status/{task_id}: cheap to poll (ETag, 304, Retry-After), tenant-isolated.

The answer itself is :func:`status_answer`, shared by the route and by the short path that answers
most polls before the framework's per-request work (:mod:`maie.api.poll_path`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_304_NOT_MODIFIED

from maie.api.etags import etag_listed
from maie.api.guards import tenant_of
from maie.api.poll_path import StatusPollMiddleware
from maie.api.queries import load_task, status_body, status_etag
from maie.schemas import ErrorBody, StatusResponse

if TYPE_CHECKING:
    from maie.api.services import Services

__all__ = ["StatusAnswer", "StatusController", "status_answer"]


class StatusAnswer(NamedTuple):
    """What GET /v1/status answers: 200 with the JSON body, or 304 with no body."""

    status_code: int
    headers: dict[str, str]
    body: bytes


async def status_answer(services: Services, task_id: str, tenant: str, if_none_match: str) -> StatusAnswer:
    """The status of ``tenant``'s task ``task_id``; 304 when ``if_none_match`` names its ETag.

    Raises:
        NotFoundError: no such task for this tenant (or a malformed id).
        StoreUnavailableError: the store cannot answer.
    """
    record = await load_task(services, task_id, tenant)
    etag = status_etag(record)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if not record.status.terminal:
        headers["Retry-After"] = str(services.settings.server.status_retry_after_s)
    if if_none_match and etag_listed(if_none_match, etag):
        return StatusAnswer(HTTP_304_NOT_MODIFIED, headers, b"")
    return StatusAnswer(HTTP_200_OK, headers, await status_body(services, record, etag))


class StatusController(Controller):
    """Task status."""

    path = "/status"
    tags = ("tasks",)
    middleware = (StatusPollMiddleware(status_answer),)

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

        A poll with a known key is answered before this runs, by the route's short path
        (:class:`~maie.api.poll_path.StatusPollMiddleware`), with the same :func:`status_answer`;
        this handler is the route as documented and as it answers without that path (the parity
        tests run it). The only parameter is the request: the services come from the app's state and the id
        from the matched path, because resolving them as a dependency and a path parameter cost
        this most polled route a signature model and a provider call per request.
        """
        services: Services = request.app.state.services
        task_id: str = request.scope["path_params"]["task_id"]
        answer = await status_answer(
            services, task_id, tenant_of(request), request.headers.get("If-None-Match", "")
        )
        if answer.status_code == HTTP_304_NOT_MODIFIED:
            return Response(content=b"", status_code=HTTP_304_NOT_MODIFIED, headers=answer.headers)
        return Response(content=answer.body, media_type="application/json", headers=answer.headers)
