"""Keys, encoding and connection options shared by the blocking and the async store."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import redis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from maie.errors import NotFoundError, StoreUnavailableError

__all__ = [
    "ACTIVE_KEY",
    "ADMISSION_KEY",
    "ADMIT_LUA",
    "PREFIX",
    "REDIS_DOWN",
    "RELEASE_LUA",
    "WORKERS_KEY",
    "artifact_key",
    "async_reconnect",
    "batch_key",
    "decode",
    "decode_optional",
    "encoder",
    "result_key",
    "results_url",
    "task_key",
    "unavailable",
]

T = TypeVar("T")
StructT = TypeVar("StructT", bound=msgspec.Struct)

PREFIX = "maie"
ACTIVE_KEY = f"{PREFIX}:active"
WORKERS_KEY = f"{PREFIX}:workers"
#: Queue slots held by submissions whose upload is still being received, scored by expiry time.
ADMISSION_KEY = f"{PREFIX}:admission"
#: Errors that mean "Redis cannot be reached right now".
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

encoder = msgspec.json.Encoder()
#: Compare-and-delete: remove KEYS[1] only while it holds ARGV[1].
RELEASE_LUA = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
#: Admission: hold ARGV[5..] as queue slots (KEYS[2], expiring at ARGV[4]) if unfinished tasks
#: (KEYS[1], entries older than ARGV[2] dropped) plus live slots (expired ones, before ARGV[1],
#: dropped) leave room under the limit ARGV[3]. Returns -1 when held, else the slots in use.
ADMIT_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local used = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if used + #ARGV - 4 > tonumber(ARGV[3]) then
  return used
end
for i = 5, #ARGV do
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[i])
end
return -1
"""


def task_key(task_id: str) -> str:
    """Key of a task record."""
    return f"{PREFIX}:task:{task_id}"


def artifact_key(task_id: str, stage: str) -> str:
    """Key of one stage's artifact."""
    return f"{PREFIX}:task:{task_id}:artifact:{stage}"


def result_key(task_id: str, version: int) -> str:
    """Key of one result version."""
    return f"{PREFIX}:task:{task_id}:result:{version}"


def batch_key(batch_id: str) -> str:
    """Key of a batch record."""
    return f"{PREFIX}:batch:{batch_id}"


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


def decode(data: object, kind: type[StructT], what: str) -> StructT:
    """Decode a stored value.

    Raises:
        NotFoundError: naming ``what`` when the key held nothing.
    """
    if data is None:
        raise NotFoundError(f"{what} not found")
    return msgspec.json.decode(_raw(data), type=kind)


def decode_optional(data: object, kind: type[StructT]) -> StructT | None:
    """Decode a stored value, or None when the key held nothing."""
    return None if data is None else msgspec.json.decode(_raw(data), type=kind)


def _raw(data: object) -> bytes | str:
    if not isinstance(data, bytes | str):
        msg = f"unexpected reply from Redis: {type(data).__name__}"
        raise TypeError(msg)
    return data


def unavailable(exc: Exception) -> StoreUnavailableError:
    """The error raised when Redis cannot be reached."""
    return StoreUnavailableError(f"the task store (Redis) cannot be reached: {exc}")
