"""Task store on Redis: task records, stage artifacts and result versions.

Everything lives in the results database (``MAIE_REDIS_RESULTS_DB``) under the ``maie:`` prefix and
is encoded as JSON with the contract Structs of :mod:`maie.schemas`:

- ``maie:task:<id>`` — the :class:`~maie.schemas.TaskRecord`;
- ``maie:task:<id>:artifact:<stage>`` — a stage's output (preprocess metadata, ASR segments, ...);
- ``maie:task:<id>:result:<n>`` — immutable :class:`~maie.schemas.ResultVersion` number ``n``;
- ``maie:active`` — sorted set of unfinished task ids by submit time (the queue depth);
- ``maie:admission`` — queue slots held by submissions still being received, by expiry time;
- ``maie:workers`` — sorted set of worker ids by last heartbeat;
- ``maie:tenant:<tenant>:tasks`` — the tenant's tasks, newest last, for cursor paging
  (:mod:`maie.store.task_index`);
- ``maie:batch:<id>`` — a :class:`~maie.schemas.BatchRecord`;
- ``maie:idempotency:<tenant>:<sha256 of key>`` — the task or batch an ``Idempotency-Key`` created.

Every key is written with the record TTL. The worker uses :class:`TaskStore` (blocking client,
optimistic transactions for read-modify-write); the API uses :class:`AsyncTaskStore`.
"""

from maie.store.aio import WORKER_HEARTBEAT_WINDOW_S, AsyncTaskStore
from maie.store.blocking import TaskStore
from maie.store.keys import (
    ACTIVE_KEY,
    PREFIX,
    REDIS_DOWN,
    WORKERS_KEY,
    artifact_key,
    async_reconnect,
    batch_key,
    result_key,
    results_url,
    task_key,
)

__all__ = [
    "ACTIVE_KEY",
    "PREFIX",
    "REDIS_DOWN",
    "WORKERS_KEY",
    "WORKER_HEARTBEAT_WINDOW_S",
    "AsyncTaskStore",
    "TaskStore",
    "artifact_key",
    "async_reconnect",
    "batch_key",
    "result_key",
    "results_url",
    "task_key",
]
