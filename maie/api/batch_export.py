"""GET /v1/batches/{id}/export: one row per task of a batch, as JSON Lines or CSV.

A row holds what every task has (task id, name, status, error) and, once the task is complete,
what its latest result holds: language, duration, the transcript (the clean one when there is
one, else the raw one, else the segments' text) and the summary. In JSON Lines the summary is
one object under ``summary``; in CSV each top-level field of the batch template's JSON Schema is
a ``summary.<field>`` column (lists and objects JSON-encoded). A diarized task's row has its
speaker statistics: ``num_speakers`` and ``speakers`` (each speaker's id, name, speaking time and
segment count; JSON in a CSV cell). Rows are produced in chunks, so a
batch of a thousand long meetings is streamed, not held in memory.
"""

from __future__ import annotations

import csv
import enum
import io
from typing import TYPE_CHECKING, Any

import msgspec

from maie.api.precision import TIME_PLACES, public_result

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from maie.schemas import BatchRecord, ResultVersion, TaskRecord
    from maie.store import AsyncTaskStore

__all__ = ["BASE_COLUMNS", "EXPORT_MEDIA_TYPES", "BatchExportFormat", "export_rows", "render_rows", "row_of"]

#: Columns every row has, in order.
BASE_COLUMNS = (
    "task_id",
    "name",
    "status",
    "language",
    "duration_s",
    "result_version",
    "transcript",
    "num_speakers",
    "speakers",
    "error_code",
    "error",
)
#: Tasks loaded from Redis per round trip.
CHUNK = 50


class BatchExportFormat(enum.StrEnum):
    """Formats of a batch export."""

    JSONL = "jsonl"
    CSV = "csv"


#: Media type of each format, as handed to Litestar (which adds ``; charset=utf-8`` to ``text/*``).
EXPORT_MEDIA_TYPES = {BatchExportFormat.JSONL: "application/x-ndjson", BatchExportFormat.CSV: "text/csv"}


def _transcript(result: ResultVersion) -> str | None:
    results = result.results
    if results.clean_transcript or results.raw_transcript:
        return results.clean_transcript or results.raw_transcript
    if results.segments:
        return " ".join(s.text.strip() for s in results.segments if s.text.strip())
    return None


def row_of(task_id: str, record: TaskRecord | None, result: ResultVersion | None) -> dict[str, Any]:
    """The export row of one task (``record`` None when it expired)."""
    if record is None:
        return {"task_id": task_id, "status": "EXPIRED"}
    row: dict[str, Any] = {
        "task_id": task_id,
        "name": record.request.filename or record.request.source_url,
        "status": record.status.value,
        "duration_s": round(record.source.duration_s, TIME_PLACES) if record.source else None,
        "result_version": record.result_version,
        "error_code": record.error_code,
        "error": record.error,
    }
    if result is not None:
        row["language"] = result.results.language
        if result.metrics is not None:
            row["duration_s"] = result.metrics.input_duration_seconds
        row["transcript"] = _transcript(result)
        if result.results.speakers is not None:
            row["num_speakers"] = len(result.results.speakers)
            row["speakers"] = msgspec.to_builtins(result.results.speakers)
        row["summary"] = result.results.summary
    return row


async def export_rows(store: AsyncTaskStore, batch: BatchRecord) -> AsyncIterator[dict[str, Any]]:
    """The rows of ``batch``'s tasks, in upload order."""
    for start in range(0, len(batch.task_ids), CHUNK):
        ids = batch.task_ids[start : start + CHUNK]
        records = await store.get_many(ids)
        wanted = [(r.task_id, r.result_version) for r in records if r is not None and r.result_version]
        results = dict(zip((t for t, _ in wanted), await store.get_results(wanted), strict=True))
        for task_id, record in zip(ids, records, strict=True):
            result = results.get(task_id)
            yield row_of(task_id, record, None if result is None else public_result(result))


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    return str(value)


def render_rows(
    rows: Sequence[dict[str, Any]], fmt: BatchExportFormat, summary_fields: Sequence[str], *, header: bool
) -> bytes:
    """Some rows as JSON Lines, or as CSV lines (after the header line when ``header``)."""
    if fmt == BatchExportFormat.JSONL:
        return b"".join(msgspec.json.encode(row) + b"\n" for row in rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow([*BASE_COLUMNS, *(f"summary.{f}" for f in summary_fields)])
    for row in rows:
        summary = row.get("summary") or {}
        writer.writerow(
            [_cell(row.get(c)) for c in BASE_COLUMNS] + [_cell(summary.get(f)) for f in summary_fields]
        )
    return out.getvalue().encode()
