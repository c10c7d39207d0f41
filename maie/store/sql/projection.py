"""The ``task_stages`` and ``webhook_deliveries`` rows of a task, kept in step with its record.

The record (JSONB) is what the API and the worker read and change; these rows repeat its stages
and webhook deliveries as columns for queries across tasks. Every write of a record calls
:func:`follow` in its own transaction, which writes only the rows that changed: an update of one
stage touches one row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from maie.store.sql.operations import Statement, plain_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from maie.schemas import StageRecord, TaskRecord, WebhookDelivery
    from maie.store.sql.operations import Op

__all__ = ["follow", "stage_key"]

_UPSERT_STAGE = """
INSERT INTO task_stages (task_id, stage_key, position, name, job_id, status, attempts, started_at,
                         finished_at, duration_s, error, template_id, result_version)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (task_id, stage_key) DO UPDATE SET
    position = EXCLUDED.position, status = EXCLUDED.status, attempts = EXCLUDED.attempts,
    started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
    duration_s = EXCLUDED.duration_s, error = EXCLUDED.error, template_id = EXCLUDED.template_id,
    result_version = EXCLUDED.result_version
"""
_DELETE_STAGES = "DELETE FROM task_stages WHERE task_id = %s AND stage_key = ANY(%s)"
_UPSERT_DELIVERY = """
INSERT INTO webhook_deliveries (task_id, event_id, event, state, attempts, last_attempt_at,
                                last_status_code, last_error, delivered_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (task_id, event_id) DO UPDATE SET
    state = EXCLUDED.state, attempts = EXCLUDED.attempts, last_attempt_at = EXCLUDED.last_attempt_at,
    last_status_code = EXCLUDED.last_status_code, last_error = EXCLUDED.last_error,
    delivered_at = EXCLUDED.delivered_at
"""
_DELETE_DELIVERIES = "DELETE FROM webhook_deliveries WHERE task_id = %s AND event_id = ANY(%s)"


def stage_key(stage: StageRecord) -> str:
    """Key of a stage among its task's: its name, or ``job:<job_id>`` for a re-summarization job."""
    return f"job:{stage.job_id}" if stage.job_id else stage.name.value


def _stage_rows(record: TaskRecord) -> dict[str, tuple[Any, ...]]:
    return {
        stage_key(s): (
            record.task_id,
            stage_key(s),
            position,
            s.name.value,
            s.job_id,
            s.status.value,
            s.attempts,
            s.started_at,
            s.finished_at,
            s.duration_s,
            plain_text(s.error) if s.error else None,
            s.template_id,
            s.result_version,
        )
        for position, s in enumerate(record.stages)
    }


def _delivery_row(task_id: str, delivery: WebhookDelivery) -> tuple[Any, ...]:
    last = delivery.attempts[-1] if delivery.attempts else None
    return (
        task_id, delivery.event_id, delivery.event, delivery.state.value, len(delivery.attempts),
        last.at if last else None, last.status_code if last else None,
        plain_text(last.error) if last and last.error else None, delivery.delivered_at,
    )  # fmt: skip


def _delivery_rows(record: TaskRecord) -> dict[str, tuple[Any, ...]]:
    return {d.event_id: _delivery_row(record.task_id, d) for d in record.webhooks}


def _changes(
    task_id: str,
    old: dict[str, tuple[Any, ...]],
    new: dict[str, tuple[Any, ...]],
    upsert: str,
    delete: str,
) -> Sequence[Statement]:
    statements = []
    if gone := sorted(old.keys() - new.keys()):
        statements.append(Statement(delete, (task_id, gone)))
    if changed := [row for key, row in new.items() if old.get(key) != row]:
        statements.append(Statement(upsert, many=changed))
    return statements


def follow(before: TaskRecord | None, after: TaskRecord) -> Op[None]:
    """Write the stage and delivery rows that differ between ``before`` (None: a new task) and ``after``."""
    task_id = after.task_id
    old_stages = _stage_rows(before) if before else {}
    old_deliveries = _delivery_rows(before) if before else {}
    for statement in (
        *_changes(task_id, old_stages, _stage_rows(after), _UPSERT_STAGE, _DELETE_STAGES),
        *_changes(task_id, old_deliveries, _delivery_rows(after), _UPSERT_DELIVERY, _DELETE_DELIVERIES),
    ):
        _ = yield statement  # not `yield from`: the driver sends each statement's rows back
