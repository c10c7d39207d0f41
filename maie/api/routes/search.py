"""GET /v1/search: full-text search of the caller's transcripts and summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter

from maie.api.filters import FILTERS, MAX_PAGE
from maie.api.guards import tenant_of
from maie.api.openapi import error_responses
from maie.schemas import SearchPage

if TYPE_CHECKING:
    from litestar.di import NamedDependency

    from maie.api.services import Services
    from maie.store import TaskFilter

__all__ = ["DEFAULT_HITS", "SearchController"]

#: Tasks per page of hits when the request names no limit.
DEFAULT_HITS = 20


class SearchController(Controller):
    """Search the tenant's results."""

    path = "/search"
    tags = ("search",)

    @get(
        "/",
        dependencies=FILTERS,
        responses=error_responses(400),
        summary="Search transcripts and summaries",
        description=(
            "PostgreSQL full-text search of the newest result of each of your tasks: raw and "
            'clean transcripts and the summary. `q` takes words (all must occur), `"a phrase"`, '
            "`or` and `-word`. Hits are tasks, newest first, each with its matching segments "
            "(id, start, end, speaker when known) and a snippet with the matching words in "
            "`<mark>`; cursor-paged like GET /v1/tasks, with the same filters."
        ),
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        *,
        services: NamedDependency[Services],
        q: Annotated[str, Parameter(description="What to search for", min_length=1, max_length=500)],
        filters: NamedDependency[TaskFilter],
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="Most tasks per page")] = DEFAULT_HITS,
        cursor: Annotated[str | None, Parameter(description="next_cursor of the previous page")] = None,
    ) -> SearchPage:
        """Return one page of the caller's tasks that match ``q``."""
        hits, next_cursor = await services.store.search(
            tenant_of(request), q, limit=limit, cursor=cursor, filters=filters
        )
        return SearchPage(hits=hits, next_cursor=next_cursor)
