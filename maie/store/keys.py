"""Every Redis key MAIE uses, and what the users of Redis share: connection options, errors.

Redis holds live state only (the system of record is PostgreSQL, :mod:`maie.store.sql`): the
broker's queues, worker heartbeats and the models they hold, ASR leases, rate-limit counters and
the metrics series. Wiping it loses no task, result or batch.

Keys are built here and nowhere else (a test looks for key strings in other modules), so a new key
cannot collide with an old one unnoticed and the storage table of docs/architecture.md has one
module to follow. Everything lives under the ``maie:`` prefix in the database
``MAIE_REDIS_RESULTS_DB``, except the broker's queues (``maie-dramatiq:*``, in the broker's
database, named by Dramatiq from :data:`BROKER_NAMESPACE`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from maie.errors import StoreUnavailableError

__all__ = [
    "BROKER_NAMESPACE",
    "FINISHED_CHANNEL",
    "METRICS_FAILURES_KEY",
    "METRICS_STREAM_KEY",
    "METRICS_TASKS_KEY",
    "PREFIX",
    "RATE_LIMIT_PREFIX",
    "REDIS_DOWN",
    "RELEASE_LUA",
    "STREAM_OPEN_LUA",
    "STREAM_SESSIONS_KEY",
    "WORKERS_KEY",
    "asr_claim_key",
    "asr_ready_key",
    "async_reconnect",
    "histogram_key",
    "idempotency_key",
    "intake_owner_key",
    "queue_key",
    "record_cache_key",
    "results_url",
    "stream_key_sessions_key",
    "unavailable",
    "worker_models_key",
]

#: Prefix of every key in Redis's database ``MAIE_REDIS_RESULTS_DB``.
PREFIX: Final = "maie"
#: Sorted set of worker ids by last heartbeat.
WORKERS_KEY: Final = f"{PREFIX}:workers"
#: Hash of task counts by outcome (``accepted``, ``complete``, ``failed``), no expiry.
METRICS_TASKS_KEY: Final = f"{PREFIX}:metrics:tasks"
#: Hash of failed tasks by ``<stage>|<error_code>``, no expiry.
METRICS_FAILURES_KEY: Final = f"{PREFIX}:metrics:failures"
#: Prefix of the rate-limit counters; the ``limits`` library appends the limit and a hash of the key.
RATE_LIMIT_PREFIX: Final = f"{PREFIX}:ratelimit"
#: Prefix of the broker's keys (Dramatiq's namespace), apart from other Dramatiq users of a server.
BROKER_NAMESPACE: Final = "maie-dramatiq"
#: Pub/sub channel (results database) on which workers announce each task they finish (its id), so
#: API processes waiting for a result (the OpenAI routes) learn of it without polling.
FINISHED_CHANNEL: Final = f"{PREFIX}:finished"
#: Hash of the live-transcription counters: sessions by ``sessions|<backend>|<outcome>``, seconds
#: of audio by ``audio_s|<backend>`` (no expiry).
METRICS_STREAM_KEY: Final = f"{PREFIX}:metrics:stream"
#: Sorted set of every open live session (``<process>:<session>``) by lease expiry, across processes.
STREAM_SESSIONS_KEY: Final = f"{PREFIX}:stream:sessions"
#: Errors that mean "Redis cannot be reached right now".
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

#: Compare-and-delete: remove KEYS[1] only while it holds ARGV[1].
RELEASE_LUA = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
#: Open a live session: drop expired leases from the key's set (KEYS[1]) and the global one
#: (KEYS[2], both before ARGV[1]); if the key holds fewer than ARGV[2], lease ARGV[3] in both until
#: ARGV[4] and return -1, else return the key's count. Renewing a lease is a plain ZADD XX.
STREAM_OPEN_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local open = redis.call('ZCARD', KEYS[1])
if open >= tonumber(ARGV[2]) then
  return open
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(ARGV[4]) - tonumber(ARGV[1])) * 1000))
return -1
"""


def asr_claim_key(task_id: str) -> str:
    """Key of a task's ASR lease: the token of the worker transcribing it."""
    return f"{PREFIX}:task:{task_id}:asr-claim"


def record_cache_key(task_id: str) -> str:
    """Key of a finished task's cached record, or of its tombstone (:mod:`maie.store.record_cache`)."""
    return f"{PREFIX}:cache:task:{task_id}"


def asr_ready_key(group: str) -> str:
    """Key of the sorted set of tasks waiting for ASR group ``group`` (a backend, or backend:variant)."""
    return f"{PREFIX}:asr:ready:{group}"


def worker_models_key(worker_id: str) -> str:
    """Key of the set of models worker ``worker_id`` holds in memory (labels ``<backend>:<variant>``)."""
    return f"{WORKERS_KEY}:{worker_id}:models"


def intake_owner_key(owner_id: str) -> str:
    """Name of an API process's liveness mark among the idempotency claims (see ``maie.api.intake``)."""
    return f"{PREFIX}:intake-owner:{owner_id}"


def idempotency_key(tenant: str, key: str) -> str:
    """Name of the claim a tenant's ``Idempotency-Key`` makes (the client's key is hashed).

    Claims are rows of PostgreSQL's ``idempotency_claims`` (they must outlive a wipe of Redis);
    their names keep the form of a MAIE key so there is one place that builds them.
    """
    return f"{PREFIX}:idempotency:{tenant}:{hashlib.sha256(key.encode()).hexdigest()}"


def stream_key_sessions_key(api_key: str) -> str:
    """Key of the sorted set of an API key's open live sessions (the key is hashed, never stored)."""
    return f"{PREFIX}:stream:key:{hashlib.sha256(api_key.encode()).hexdigest()[:32]}:sessions"


def histogram_key(series: str) -> str:
    """Key of the hash holding the cluster-wide histogram ``series``."""
    return f"{PREFIX}:metrics:hist:{series}"


def queue_key(queue_name: str) -> str:
    """Key of the broker's list of messages waiting in queue ``queue_name`` (in the broker's database)."""
    return f"{BROKER_NAMESPACE}:{queue_name}"


def results_url(url: str, db: int) -> str:
    """The Redis URL of the results database: ``url`` with its database number replaced.

    redis-py lets the URL's database win over a ``db=`` argument, so the URL itself is rewritten.
    """
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        # urlunsplit drops the "//" of an empty host, which redis-py needs for unix URLs.
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def async_reconnect() -> dict[str, Any]:
    """Options of an async client that reconnects when Redis restarted under it.

    redis-py's sync client retries a command whose pooled connection the server closed; its async
    client does not, so after a Redis restart every stale connection would fail one request.
    Connection errors are retried three times with a short back-off; timeouts are not (a host
    that does not answer should fail fast, within the socket timeout).
    """
    return {
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=3),
        "retry_on_error": [redis.exceptions.ConnectionError],
    }


def unavailable(exc: Exception) -> StoreUnavailableError:
    """The error raised when Redis cannot be reached."""
    return StoreUnavailableError(f"Redis cannot be reached: {exc}")
