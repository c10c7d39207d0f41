"""Task webhooks on the worker: queue one when a task finishes, deliver it with retries.

A deleted task's ``task.deleted`` event is queued by the API with everything its delivery needs
(:meth:`WebhookNotifier.deliver_deletion`), since the task it announces is gone.

**Queueing.** The delivery message is sent *before* the task is marked COMPLETE or FAILED (the
tracker calls :meth:`WebhookNotifier.announce` first). A worker that dies between the two leaves
its finalize message unacknowledged; it runs again and sends again, so no finished task goes
unannounced. The delivery waits briefly for the task to be marked finished, and retries later if
it is not.

**Delivering.** Each attempt is recorded on the task (``webhooks`` in GET /v1/status). A 2xx
answer delivers the event; anything else is retried by Dramatiq with exponential back-off
(``MAIE_WEBHOOK_MIN_BACKOFF_MS`` doubling up to ``MAIE_WEBHOOK_MAX_BACKOFF_MS``) for
``MAIE_WEBHOOK_MAX_RETRIES`` retries, then the event is marked failed. Delivery is at least once:
the same event can arrive twice (a worker dying after the POST but before recording it), always
with the same ``event_id``, and an event already delivered is never sent again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dramatiq
import msgspec
import structlog

from maie.errors import CallbackRefusedError, NotFoundError, StoreUnavailableError
from maie.schemas import WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookState
from maie.store import REDIS_DOWN
from maie.webhooks import signing
from maie.webhooks.delivery import Attempt, WebhookPoster

if TYPE_CHECKING:
    from collections.abc import Callable

    from maie.config import Settings
    from maie.schemas import TaskRecord
    from maie.store import TaskStore

__all__ = ["MAX_RECORDED_ATTEMPTS", "TERMINAL_WAIT_S", "WebhookNotifier"]

log = structlog.get_logger(__name__)

#: Seconds a delivery waits for its task to be marked finished before it retries later.
TERMINAL_WAIT_S = 5.0
#: Attempts kept on the task per event (the latest ones).
MAX_RECORDED_ATTEMPTS = 50


class WebhookNotifier:
    """Queues and delivers the webhooks of tasks that have a ``callback_url``."""

    def __init__(self, settings: Settings, store: TaskStore, poster: WebhookPoster | None = None) -> None:
        self.settings = settings
        self.store = store
        self.poster = poster or WebhookPoster(
            timeout_s=settings.webhook.timeout_s, allow_private=settings.webhook.allow_private
        )

    def announce(self, task_id: str, send: Callable[[str], object]) -> None:
        """Send the delivery message of a task about to finish, if it has a callback URL."""
        try:
            record = self.store.get(task_id)
        except NotFoundError:
            return
        if record.request.callback_url and not record.status.terminal:
            try:
                send(task_id)
            except REDIS_DOWN as exc:
                raise StoreUnavailableError(f"the queue (Redis) cannot be reached: {exc}") from exc
            log.info("webhook.queued")

    def announce_version(self, task_id: str, version: int, send: Callable[[str, int], object]) -> None:
        """Send the delivery message of result version ``version`` added to a finished task."""
        try:
            record = self.store.get(task_id)
        except NotFoundError:
            return
        if record.request.callback_url:
            try:
                send(task_id, version)
            except REDIS_DOWN as exc:
                raise StoreUnavailableError(f"the queue (Redis) cannot be reached: {exc}") from exc
            log.info("webhook.queued", result_version=version)

    def deliver(self, task_id: str, *, final: bool, version: int | None = None) -> None:
        """Make one delivery attempt for the task's finishing event.

        Args:
            task_id: The task.
            final: Whether this is the last attempt Dramatiq will make; a failure then marks
                the event failed instead of asking for a retry.
            version: The result version the event announces (a re-summarization's); None means
                the task's own finish.

        Raises:
            dramatiq.Retry: when the attempt failed and another one should follow.
        """
        record = self._finished(task_id)
        callback_url = record.request.callback_url if record is not None else None
        if record is None or not callback_url:
            return
        if version is not None:
            record = msgspec.structs.replace(record, result_version=version)
        event = signing.event_of(record, public_url=self.settings.server.public_url)
        done = next((d for d in record.webhooks if d.event_id == event.event_id), None)
        if done is not None and done.state != WebhookState.PENDING:
            log.info("webhook.already_handled", event_id=event.event_id, state=done.state.value)
            return
        secret = self.settings.auth.webhook_secret
        if not secret:
            self._record(task_id, event, Attempt(None, "MAIE_WEBHOOK_SECRET is not set", 0.0), give_up=True)
            return
        body = signing.encode(event)
        try:
            attempt = self.poster.post(callback_url, body, signing.headers_for(event, body, secret))
        except CallbackRefusedError as exc:
            self._record(task_id, event, Attempt(None, exc.detail, 0.0), give_up=True)
            return
        self._record(task_id, event, attempt, give_up=final and not attempt.ok)
        if not attempt.ok and not final:
            msg = f"webhook {event.event_id} not delivered: {attempt.error}"
            raise dramatiq.Retry(msg)

    def deliver_deletion(self, callback_url: str, event_json: str, *, final: bool) -> None:
        """Make one delivery attempt of a deleted task's ``task.deleted`` event.

        The task is gone, so the attempt is logged but recorded nowhere; a receiver deduplicates
        on the event id as for any other event.

        Raises:
            dramatiq.Retry: when the attempt failed and another one should follow.
        """
        event = msgspec.json.decode(event_json, type=WebhookEvent)
        fields = {"event_id": event.event_id, "event": event.event}
        secret = self.settings.auth.webhook_secret
        if not secret:
            log.warning("webhook.gave_up", error="MAIE_WEBHOOK_SECRET is not set", **fields)
            return
        body = signing.encode(event)
        try:
            attempt = self.poster.post(callback_url, body, signing.headers_for(event, body, secret))
        except CallbackRefusedError as exc:
            log.warning("webhook.gave_up", error=exc.detail, **fields)
            return
        if attempt.ok:
            log.info("webhook.delivered", status_code=attempt.status_code, **fields)
            return
        if final:
            log.warning("webhook.gave_up", status_code=attempt.status_code, error=attempt.error, **fields)
            return
        log.info("webhook.attempt_failed", status_code=attempt.status_code, error=attempt.error, **fields)
        msg = f"webhook {event.event_id} not delivered: {attempt.error}"
        raise dramatiq.Retry(msg)

    def _finished(self, task_id: str) -> TaskRecord | None:
        """The task once it is finished; None if it is gone.

        Raises:
            dramatiq.Retry: if it is still not finished after :data:`TERMINAL_WAIT_S`.
        """
        deadline = time.monotonic() + TERMINAL_WAIT_S
        while True:
            try:
                record = self.store.get(task_id)
            except NotFoundError:
                log.warning("webhook.task_missing")
                return None
            if record.status.terminal:
                return record
            if time.monotonic() > deadline:
                msg = f"task {task_id} is not finished yet"
                raise dramatiq.Retry(msg)
            time.sleep(0.05)

    def _record(self, task_id: str, event: WebhookEvent, attempt: Attempt, *, give_up: bool) -> None:
        """Note ``attempt`` on the task, and the event's new state."""
        now = datetime.now(UTC)
        noted = WebhookAttempt(
            at=now,
            status_code=attempt.status_code,
            error=attempt.error,
            duration_s=round(attempt.duration_s, 3),
        )

        def change(record: TaskRecord) -> None:
            delivery = next((d for d in record.webhooks if d.event_id == event.event_id), None)
            if delivery is None:
                delivery = WebhookDelivery(
                    event_id=event.event_id, event=event.event, state=WebhookState.PENDING, attempts=[]
                )
                record.webhooks.append(delivery)
            delivery.attempts = [*delivery.attempts, noted][-MAX_RECORDED_ATTEMPTS:]
            if attempt.ok:
                delivery.state = WebhookState.DELIVERED
                delivery.delivered_at = now
            elif give_up:
                delivery.state = WebhookState.FAILED

        try:
            self.store.update(task_id, change)
        except NotFoundError:
            log.warning("webhook.task_missing")
        fields = {"event_id": event.event_id, "status_code": attempt.status_code, "error": attempt.error}
        if attempt.ok:
            log.info("webhook.delivered", **fields)
        elif give_up:
            log.warning("webhook.gave_up", **fields)
        else:
            log.info("webhook.attempt_failed", **fields)

    def close(self) -> None:
        """Close the HTTP client."""
        self.poster.close()
