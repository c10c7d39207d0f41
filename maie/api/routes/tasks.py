"""GET /v1/tasks: the caller's tasks, newest first, filtered, paged by an opaque cursor; DELETE one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, delete, get
from litestar.params import Parameter

from maie.api.deletion import forget
from maie.api.filters import DEFAULT_PAGE, FILTERS, MAX_PAGE
from maie.api.guards import tenant_of
from maie.api.openapi import error_responses
from maie.api.queries import summary_of
from maie.api.request_id import request_id_of
from maie.schemas import TaskPage

if TYPE_CHECKING:
    from litestar.di import NamedDependency
    from litestar.params import FromPath

    from maie.api.services import Services
    from maie.store import TaskFilter

__all__ = ["TasksController"]


class TasksController(Controller):
    """The tenant's tasks."""

    path = "/tasks"
    tags = ("tasks",)

    @get(
        "/",
        dependencies=FILTERS,
        summary="List tasks, newest first",
        description=(
            "Cursor-paged: pass `next_cursor` back as `cursor` for the next page; it is null on the "
            "last page. With a filter a page may hold fewer than `limit` tasks and still have a "
            "next page."
        ),
    )
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        filters: NamedDependency[TaskFilter],
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="Most tasks per page")] = DEFAULT_PAGE,
        cursor: Annotated[str | None, Parameter(description="next_cursor of the previous page")] = None,
    ) -> TaskPage:
        """Return one page of the caller's tasks."""
        records, next_cursor = await services.store.task_page(
            tenant_of(request), limit=limit, cursor=cursor, filters=filters
        )
        return TaskPage(tasks=[summary_of(r) for r in records], next_cursor=next_cursor)

    @delete(
        "/{task_id:str}",
        status_code=204,
        responses=error_responses(404),
        summary="Delete a task: its record, every result version, artifacts, audio and search entries",
        description=(
            "Irreversible. A task still being processed stops. A second call, or a call for "
            "another tenant's task, answers 404. A task with a `callback_url` gets a "
            "`task.deleted` webhook."
        ),
    )
    async def delete_task(
        self, request: Request[Any, Any, Any], task_id: FromPath[str], services: NamedDependency[Services]
    ) -> Response[None]:
        """Delete one of the caller's tasks."""
        record = await services.store.delete_task(task_id, tenant=tenant_of(request))
        await forget(services, [record], request_id=request_id_of(request))
        return Response(None, status_code=204)
