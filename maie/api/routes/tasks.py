"""GET /v1/tasks: the caller's tasks, newest first, paged by an opaque cursor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter

from maie.api.guards import tenant_of
from maie.api.queries import summary_of
from maie.errors import InvalidRequestError
from maie.schemas import TaskPage, TaskStatus

if TYPE_CHECKING:
    from litestar.di import NamedDependency

    from maie.api.services import Services

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "TasksController", "parse_statuses"]

#: Tasks per page when the request names no limit.
DEFAULT_PAGE = 50
#: Most tasks per page.
MAX_PAGE = 200


def parse_statuses(values: list[str] | None) -> set[str]:
    """Repeated or comma-separated statuses, any case.

    Raises:
        InvalidRequestError: naming an unknown status and the known ones, or a ``status=`` that
            names none (it would list every task, which a client that sent a filter did not mean).
    """
    names = {n.strip().upper() for v in values or [] for n in v.split(",") if n.strip()}
    known = {s.value for s in TaskStatus}
    if values and any(not v.replace(",", "").strip() for v in values):
        raise InvalidRequestError(
            f"status is empty: name one or more of {', '.join(s.value for s in TaskStatus)}, "
            "or leave the parameter out to list every task"
        )
    unknown = sorted(names - known)
    if unknown:
        raise InvalidRequestError(
            f"unknown status {', '.join(map(repr, unknown))}; known: {', '.join(s.value for s in TaskStatus)}"
        )
    return names


class TasksController(Controller):
    """The tenant's tasks."""

    path = "/tasks"
    tags = ("tasks",)

    @get(
        "/",
        summary="List tasks, newest first",
        description=(
            "Cursor-paged: pass `next_cursor` back as `cursor` for the next page; it is null on the "
            "last page. With a status filter a page may hold fewer than `limit` tasks and still "
            "have a next page."
        ),
    )
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        status: Annotated[
            list[str] | None, Parameter(description="Only tasks in these statuses (repeat or comma-separate)")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="Most tasks per page")] = DEFAULT_PAGE,
        cursor: Annotated[str | None, Parameter(description="next_cursor of the previous page")] = None,
    ) -> TaskPage:
        """Return one page of the caller's tasks."""
        records, next_cursor = await services.store.task_page(
            tenant_of(request), statuses=parse_statuses(status), limit=limit, cursor=cursor
        )
        return TaskPage(tasks=[summary_of(r) for r in records], next_cursor=next_cursor)
