"""Status bodies already built, kept per API process so that polling a task does not rebuild its JSON.

GET /v1/status of a task with a result reads that result (a transcript: often most of the bytes)
from the store, decodes it and encodes the answer again. Clients that poll without
``If-None-Match`` ask for the same bytes over and over. The body is a function of the task record
and of the result version the record names, and result versions never change, so the record's
ETag (:func:`maie.api.queries.status_etag`) says whether a body built before is still right: the
record is read on every request (tenant check, freshness), the result only when the ETag changed.

The cache is bounded by bytes (least recently used out first) and holds one body per task; a body
larger than a quarter of the bound is never kept. Nothing here is shared between processes or
survives a restart: it only saves work, what a client sees is the same with or without it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

__all__ = ["DEFAULT_MAX_BYTES", "StatusBodies"]

#: Bytes of bodies one API process keeps by default.
DEFAULT_MAX_BYTES: Final = 32 * 1024 * 1024


class StatusBodies:
    """Built status bodies by task id, each with the ETag it was built for.

    Args:
        max_bytes: Bytes of bodies kept at most.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._bodies: OrderedDict[str, tuple[str, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._bodies)

    def get(self, task_id: str, etag: str) -> bytes | None:
        """The body built for ``task_id`` when its ETag was ``etag``; None if not kept (or stale)."""
        kept = self._bodies.get(task_id)
        if kept is None or kept[0] != etag:
            return None
        self._bodies.move_to_end(task_id)
        return kept[1]

    def put(self, task_id: str, etag: str, body: bytes) -> None:
        """Keep ``body`` as the answer for ``task_id`` while its ETag is ``etag``."""
        self.discard(task_id)
        if len(body) * 4 > self.max_bytes:
            return
        self._bodies[task_id] = (etag, body)
        self.size += len(body)
        while self.size > self.max_bytes:
            _, (_, oldest) = self._bodies.popitem(last=False)
            self.size -= len(oldest)

    def discard(self, task_id: str) -> None:
        """Forget the body of ``task_id``, if one is kept."""
        kept = self._bodies.pop(task_id, None)
        if kept is not None:
            self.size -= len(kept[1])
