"""Webhook events and their signatures (DESIGN §5).

A webhook is a POST of a :class:`~maie.schemas.WebhookEvent` as JSON with these headers:

- ``X-MAIE-Event``: ``task.completed``, ``task.failed`` or ``task.deleted``;
- ``X-MAIE-Event-Id``: the event id, the same on every attempt at one event (deduplicate on it);
- ``X-MAIE-Signature``: ``sha256=<hex HMAC-SHA256 of the raw body keyed with MAIE_WEBHOOK_SECRET>``.

A receiver recomputes the HMAC over the bytes it received, before parsing them, and compares it
in constant time (:func:`verify` does exactly that).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import TYPE_CHECKING

import msgspec

from maie import __version__
from maie.schemas import TaskStatus, WebhookEvent

if TYPE_CHECKING:
    from datetime import datetime

    from maie.schemas import TaskRecord

__all__ = [
    "EVENT_HEADER",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "deleted_event_of",
    "encode",
    "event_of",
    "headers_for",
    "sign",
    "verify",
]

#: Header naming the event type.
EVENT_HEADER = "X-MAIE-Event"
#: Header carrying the event id.
EVENT_ID_HEADER = "X-MAIE-Event-Id"
#: Header carrying the body's HMAC.
SIGNATURE_HEADER = "X-MAIE-Signature"
#: Namespace of event ids (uuid5), so an event's id follows from what happened.
_EVENT_NAMESPACE = uuid.UUID("6d1b3c55-4b7e-4f0e-9a57-2f1f0e3c7a10")


def sign(secret: str, body: bytes) -> str:
    """The ``X-MAIE-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` (an ``X-MAIE-Signature`` header) is ``body`` signed with ``secret``."""
    if not signature:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), signature.strip().encode())


def event_of(record: TaskRecord, *, public_url: str | None = None) -> WebhookEvent:
    """The event a finished task announces.

    Its id is derived from the task, the event and the result version, so every attempt, and every
    redelivered message, carries the same id; a later result version is a new event.

    Raises:
        ValueError: if the task has not finished.
    """
    if not record.status.terminal:
        msg = f"task {record.task_id} is {record.status.value}, not finished"
        raise ValueError(msg)
    event = "task.completed" if record.status == TaskStatus.COMPLETE else "task.failed"
    event_id = uuid.uuid5(_EVENT_NAMESPACE, f"{record.task_id}:{event}:{record.result_version or 0}")
    status_url = f"/v1/status/{record.task_id}"
    if public_url:
        status_url = public_url.rstrip("/") + status_url
    return WebhookEvent(
        event=event,
        event_id=str(event_id),
        task_id=record.task_id,
        status=record.status,
        status_url=status_url,
        result_version=record.result_version,
        occurred_at=record.completed_at,
        batch_id=record.batch_id,
        error_code=record.error_code,
    )


def deleted_event_of(record: TaskRecord, *, at: datetime, public_url: str | None = None) -> WebhookEvent:
    """The ``task.deleted`` event of a task deleted at ``at`` (on request or by retention).

    ``status`` is what the task was when it was deleted; its ``status_url`` now answers 404.
    """
    status_url = f"/v1/status/{record.task_id}"
    if public_url:
        status_url = public_url.rstrip("/") + status_url
    return WebhookEvent(
        event="task.deleted",
        event_id=str(uuid.uuid5(_EVENT_NAMESPACE, f"{record.task_id}:task.deleted")),
        task_id=record.task_id,
        status=record.status,
        status_url=status_url,
        result_version=record.result_version,
        occurred_at=at,
        batch_id=record.batch_id,
        error_code=record.error_code,
    )


def headers_for(event: WebhookEvent, body: bytes, secret: str) -> dict[str, str]:
    """The headers of the POST that delivers ``event`` as ``body``."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"MAIE-Webhook/{__version__}",
        EVENT_HEADER: event.event,
        EVENT_ID_HEADER: event.event_id,
        SIGNATURE_HEADER: sign(secret, body),
    }


def encode(event: WebhookEvent) -> bytes:
    """The body of the POST that delivers ``event``."""
    return msgspec.json.encode(event)
