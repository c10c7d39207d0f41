"""The retention purge: tasks older than ``MAIE_RETENTION_DAYS`` go, with their audio, on a schedule.

Every worker runs the schedule (a thread started with the worker, every
``MAIE_RETENTION_INTERVAL_S`` seconds, the first run at start-up); PostgreSQL's advisory lock lets
one purge run at a time across all of them, so more workers do not mean more work. Each round
deletes tasks in short transactions of :data:`PURGE_BATCH` (oldest first) until none is older
than the limit, then removes their audio folders. Unset ``MAIE_RETENTION_DAYS`` keeps
everything: no thread is started.
"""

from __future__ import annotations

import shutil
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog
from dramatiq import Middleware

from maie.errors import StoreUnavailableError

if TYPE_CHECKING:
    from pathlib import Path

    import dramatiq

    from maie.store import TaskStore

__all__ = ["PURGE_BATCH", "RetentionPurge"]

log = structlog.get_logger(__name__)

#: Tasks one purge transaction deletes.
PURGE_BATCH = 500


class RetentionPurge(Middleware):
    """Deletes tasks submitted more than ``days`` ago, every ``interval_s`` while the worker runs."""

    def __init__(
        self, store: TaskStore, data_dir: Path, *, days: float, interval_s: float, batch: int = PURGE_BATCH
    ) -> None:
        self.store = store
        self.audio_dir = data_dir / "audio"
        self.older_than = timedelta(days=days)
        self.interval_s = interval_s
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Start the schedule."""
        self._thread = threading.Thread(target=self._loop, name="maie-retention", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Stop the schedule (a purge under way ends after its current transaction)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except StoreUnavailableError:
                log.warning("retention.purge_failed", reason="PostgreSQL cannot be reached")
            self._stop.wait(self.interval_s)

    def run_once(self) -> int | None:
        """Purge every task older than the limit now.

        Returns:
            How many tasks were deleted, or None when another process was purging.

        Raises:
            StoreUnavailableError: if PostgreSQL cannot be reached.
        """
        total = 0
        while not self._stop.is_set():
            purged = self.store.purge(self.older_than, limit=self.batch)
            if purged is None:
                return None if total == 0 else total
            for record in purged:
                shutil.rmtree(self.audio_dir / record.task_id, ignore_errors=True)
            total += len(purged)
            if len(purged) < self.batch:
                break
        if total:
            log.info("retention.purged", tasks=total, older_than_days=self.older_than.days)
        return total
