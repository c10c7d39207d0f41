"""The task store: PostgreSQL holds what must last, Redis what is live.

PostgreSQL (:mod:`maie.store.sql`, ``MAIE_DATABASE_URL`` or the embedded server of ``maie up``)
is the system of record: task records with their stages and webhook deliveries, stage
artifacts, every result version, batches, ``Idempotency-Key`` claims, the queue slots of
submissions being received, and the search index. Records are kept until deleted or purged by
``MAIE_RETENTION_DAYS``.

Redis (:mod:`maie.store.keys`, database ``MAIE_REDIS_RESULTS_DB``) holds live state only: worker
heartbeats and loaded models, ASR leases and waiting lists, rate-limit counters and the metrics
series; the broker's queues are in the database of ``MAIE_REDIS_URL``.

The worker uses :class:`TaskStore` (blocking); the API uses :class:`AsyncTaskStore`.
"""

from maie.store.aio import WORKER_HEARTBEAT_WINDOW_S, AsyncTaskStore
from maie.store.blocking import TaskStore
from maie.store.keys import PREFIX, REDIS_DOWN, WORKERS_KEY, async_reconnect, results_url
from maie.store.sql.listing import TaskFilter
from maie.store.sql.records import Updated

__all__ = [
    "PREFIX",
    "REDIS_DOWN",
    "WORKERS_KEY",
    "WORKER_HEARTBEAT_WINDOW_S",
    "AsyncTaskStore",
    "TaskFilter",
    "TaskStore",
    "Updated",
    "async_reconnect",
    "results_url",
]
