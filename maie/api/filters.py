"""The filters GET /v1/tasks and GET /v1/search share: status, submit-time range, template, batch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar.di import Provide
from litestar.params import Parameter

from maie.errors import InvalidRequestError
from maie.schemas import TaskStatus
from maie.store import TaskFilter

__all__ = ["DEFAULT_PAGE", "FILTERS", "MAX_PAGE", "parse_statuses", "task_filter"]

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


def _moment(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 time of a query parameter; one without a zone is taken as UTC.

    Parsed here rather than by the framework, which also takes a bare number (``0.5``) as a Unix
    time: a client that sends one meant something else.

    Raises:
        InvalidRequestError: naming the parameter, for anything but an ISO 8601 date or time.
    """
    if value is None:
        return None
    if not value.strip():
        raise InvalidRequestError(f"{name} is empty: give an ISO 8601 time, or leave the parameter out")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequestError(
            f"{name} must be an ISO 8601 date or time (2026-11-30 or 2026-11-30T09:00:00Z), "
            f"not {value[:40]!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def task_filter(
    *,
    status: Annotated[
        list[str] | None, Parameter(description="Only tasks in these statuses (repeat or comma-separate)")
    ] = None,
    submitted_after: Annotated[
        str | None,
        Parameter(
            description="Only tasks submitted at or after this time (ISO 8601)",
            schema_extra={"format": "date-time"},
        ),
    ] = None,
    submitted_before: Annotated[
        str | None,
        Parameter(
            description="Only tasks submitted before this time (ISO 8601)",
            schema_extra={"format": "date-time"},
        ),
    ] = None,
    template_id: Annotated[
        str | None, Parameter(description="Only tasks submitted with this template")
    ] = None,
    batch_id: Annotated[str | None, Parameter(description="Only tasks of this batch")] = None,
) -> TaskFilter:
    """The store's filter for the query parameters of a list or a search (a Litestar dependency).

    Raises:
        InvalidRequestError: for an unknown status, a time that is not ISO 8601, or a range that
            ends before it starts.
    """
    after = _moment("submitted_after", submitted_after)
    before = _moment("submitted_before", submitted_before)
    if after is not None and before is not None and before <= after:
        raise InvalidRequestError("submitted_before must be later than submitted_after")
    return TaskFilter(
        statuses=frozenset(parse_statuses(status)),
        submitted_after=after,
        submitted_before=before,
        template_id=template_id or None,
        batch_id=batch_id or None,
    )


#: The ``filters`` dependency of a handler: its query parameters are those of :func:`task_filter`.
FILTERS = {"filters": Provide(task_filter, sync_to_thread=False)}
