"""PATCH /v1/tasks/{id}/speakers: give a diarized task's speakers names, as a new result version.

``{"names": {"SPEAKER_00": "Alice"}}`` adds version n + 1 (``kind: "speakers"``), built from the
latest version by :func:`maie.pipeline.result_builder.renamed_version`: the names stand for the
labels in the segments and words, the turns (so every export), the speaker list and the
summary's text. Earlier versions never change. Speakers left out keep the names they had.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from litestar import Controller, Request, Response, patch
from litestar.openapi import ResponseSpec

from maie.api.guards import tenant_of
from maie.api.queries import load_result, load_task
from maie.errors import ConflictError, NotFoundError, UnprocessableError
from maie.pipeline.result_builder import renamed_version
from maie.schemas import ErrorBody, ResultVersion, SpeakerNames, TaskStatus
from maie.schemas.api import MAX_SPEAKER_NAME_LENGTH, MAX_SPEAKER_NAMES

if TYPE_CHECKING:
    from litestar.di import NamedDependency
    from litestar.params import FromPath, JSONBody

    from maie.api.services import Services
    from maie.schemas import TaskRecord

__all__ = ["SpeakersController"]

log = structlog.get_logger(__name__)

#: Times a rename is built again when another version was added while it was being built.
ATTEMPTS = 5


class _Moved(Exception):  # noqa: N818 - control flow, never leaves this module
    """Raised inside the store's transaction when a version was added after the one renamed."""


def _checked_names(names: dict[str, str], speakers: list[str], task_id: str) -> dict[str, str]:
    """The names, stripped, for labels the task has.

    Raises:
        UnprocessableError: no names or more than 32, an unknown label, a blank or over-long name
            or one with control characters, or a
            name that is another speaker's label.
    """
    if not names:
        raise UnprocessableError('give at least one name: {"names": {"SPEAKER_00": "Alice"}}')
    if len(names) > MAX_SPEAKER_NAMES:
        raise UnprocessableError(f"give at most {MAX_SPEAKER_NAMES} names in one request, got {len(names)}")
    if unknown := sorted(set(names) - set(speakers)):
        have = f"its speakers are {', '.join(speakers)}" if speakers else "no speech was found in it"
        raise UnprocessableError(
            f"task {task_id} has no speaker {', '.join(unknown)}: {have}",
            extra={"unknown": unknown, "speakers": speakers},
        )
    cleaned = {}
    for label, name in names.items():
        text = name.strip()
        if not text or any(ord(ch) < 32 for ch in text):  # noqa: PLR2004 - ASCII control range
            raise UnprocessableError(f"the name for {label} must be one line of text, got {name!r}")
        if len(text) > MAX_SPEAKER_NAME_LENGTH:
            raise UnprocessableError(
                f"the name for {label} has {len(text)} characters; give at most {MAX_SPEAKER_NAME_LENGTH}"
            )
        if text in speakers and text != label:
            raise UnprocessableError(f"{text!r} is another speaker's label; give {label} a person's name")
        cleaned[label] = text
    return cleaned


def _diarized(record: TaskRecord, latest: ResultVersion) -> list[str]:
    """The labels of the task's speakers.

    Raises:
        ConflictError: if the task is not COMPLETE or was not diarized.
    """
    if latest.versions.diarization is None or latest.results.speakers is None:
        raise ConflictError(
            f"task {record.task_id} was not diarized, so it has no speakers to name; submit the "
            "recording again with diarize=true"
        )
    return [s.id for s in latest.results.speakers]


class SpeakersController(Controller):
    """Names of a task's speakers."""

    path = "/tasks/{task_id:str}/speakers"
    tags = ("results",)

    @patch(
        "/",
        status_code=200,
        summary="Name a diarized task's speakers (a new result version)",
        responses={
            200: ResponseSpec(data_container=ResultVersion, description="The new version (the latest)"),
            409: ResponseSpec(data_container=ErrorBody, description="Not COMPLETE, or not diarized"),
            422: ResponseSpec(data_container=ErrorBody, description="An unknown label, or an unusable name"),
        },
    )
    async def rename(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[str],
        data: JSONBody[SpeakerNames],
        services: NamedDependency[Services],
    ) -> Response[ResultVersion]:
        """Add a version in which ``names`` replace the speakers' labels everywhere."""
        tenant = tenant_of(request)
        for _ in range(ATTEMPTS):
            result = await _rename_once(services, task_id, tenant, data.names)
            if result is not None:
                return Response(
                    result,
                    status_code=200,
                    headers={"Content-Location": f"/v1/tasks/{task_id}/results/{result.version}"},
                )
        raise ConflictError(f"task {task_id} kept getting new result versions while renaming; try again")


async def _rename_once(
    services: Services, task_id: str, tenant: str, asked: dict[str, str]
) -> ResultVersion | None:
    """Add the renamed version on top of the latest; None when another version came first.

    A rename that changes nothing adds no version: the latest is the answer.

    Raises:
        NotFoundError: an unknown or foreign task, or version 1 expired.
        ConflictError: a task not COMPLETE, or not diarized.
        UnprocessableError: an unknown label or an unusable name.
    """
    record = await load_task(services, task_id, tenant)
    if record.status != TaskStatus.COMPLETE or record.result_version is None:
        raise ConflictError(
            f"task {task_id} is {record.status.value}; its speakers can be named once it is COMPLETE"
        )
    latest = await load_result(services, record, None)
    names = _checked_names(asked, _diarized(record, latest), task_id)
    current = {s.id: s.name for s in latest.results.speakers or []}
    if all(current.get(label) == name for label, name in names.items()):
        return latest
    original = latest if latest.version == 1 else await services.store.get_result(task_id, 1)
    if original is None:
        raise NotFoundError(f"result version 1 of task {task_id} is gone (expired)")

    def build(version: int) -> ResultVersion:
        if version != latest.version + 1:
            raise _Moved
        return renamed_version(latest, version, names=names, original=original)

    try:
        result = await services.store.add_result(task_id, build)
    except _Moved:
        return None
    log.info("speakers.renamed", task_id=task_id, result_version=result.version, renamed=len(names))
    return result
