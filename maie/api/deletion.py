"""What follows a deletion once PostgreSQL committed it: the audio goes, webhooks announce it.

The store deletes a task's rows (record, stages, artifacts, every result version, search texts)
in one transaction and hands back the records it deleted. Their audio folders are on disk, so
they are removed here, after the commit: a deletion that failed leaves the audio of a task that
still exists. A worker still running a stage of a deleted task ends it and removes whatever the
stage wrote meanwhile (``StageTracker.vanished`` on the worker).

Each deleted task with a ``callback_url`` gets a ``task.deleted`` webhook, delivered by a worker
with the usual retries; the message carries the event, since the task it announces is gone.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio.to_thread
import msgspec
import structlog

from maie.actor_table import DELIVER_DELETION
from maie.errors import StoreUnavailableError
from maie.webhooks import signing

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from maie.api.services import Services
    from maie.schemas import TaskRecord

__all__ = ["forget"]

log = structlog.get_logger(__name__)


def _remove(folders: Sequence[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


async def forget(
    services: Services, records: Sequence[TaskRecord], *, request_id: str | None, batch_id: str | None = None
) -> None:
    """Remove the audio of deleted tasks (and of their batch) and queue their ``task.deleted`` webhooks.

    A webhook that cannot be queued (Redis is down) is logged and dropped: the deletion itself
    has happened and is not undone for it.
    """
    data_dir = services.settings.storage.data_dir
    folders = [data_dir / "audio" / r.task_id for r in records]
    if batch_id is not None:
        folders.append(data_dir / "batches" / batch_id)
    await anyio.to_thread.run_sync(_remove, folders)
    now = datetime.now(UTC)
    public_url = services.settings.server.public_url
    messages = [
        DELIVER_DELETION.message(
            r.task_id,
            r.request.callback_url,
            msgspec.json.encode(signing.deleted_event_of(r, at=now, public_url=public_url)).decode(),
            request_id=request_id,
        )
        for r in records
        if r.request.callback_url
    ]
    for record in records:
        log.info("task.deleted", task_id=record.task_id, batch_id=record.batch_id)
    if not messages:
        return
    try:
        await services.enqueue(*messages)
    except StoreUnavailableError as exc:
        log.warning("webhook.deletion_not_queued", reason=exc.detail, tasks=len(messages))
