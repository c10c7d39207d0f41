"""Rate limits per API key, counted in Redis so that every API process shares one count.

Two limits apply (docs/configuration.md): ``MAIE_RATE_LIMIT`` to every ``/v1`` request of a key,
and ``MAIE_RATE_LIMIT_SUBMIT`` to its submissions on top. A request over a limit is refused with
429 and ``Retry-After`` before its body is read (by the guards of :mod:`maie.api.guards`). The
counting is the ``limits`` library's sliding window counter, one atomic Lua call per limit and
request; keys in Redis hold a hash of the API key, never the key itself.

Litestar's own ``RateLimitMiddleware`` was not used: it reads and rewrites each client's history in
two steps under a per-process lock, so API processes sharing a store lose each other's counts, and
it answers 429 without ``Retry-After``.

When Redis cannot be reached the request is let through (and logged): the rate limit protects the
service, it must not be what takes it down; submissions still get their 503 from the admission check.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import TYPE_CHECKING, Final, Literal

import redis.exceptions
import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from maie.config import RATE_LIMIT_OFF
from maie.errors import RateLimitedError
from maie.store.keys import RATE_LIMIT_PREFIX

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from maie.config import RateLimitSettings

__all__ = ["RateLimiter", "Scope", "is_off"]

log = structlog.get_logger(__name__)

#: What each limit counts, and the variable that sets it.
Scope = Literal["requests", "submissions"]
_VARIABLES: Final[dict[str, str]] = {"requests": "MAIE_RATE_LIMIT", "submissions": "MAIE_RATE_LIMIT_SUBMIT"}
#: Errors that mean the counters cannot be reached right now.
_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def is_off(value: str) -> bool:
    """Whether a ``MAIE_RATE_LIMIT*`` value switches its limit off (``off``, ``none``, ``0``)."""
    return value.strip().lower() in RATE_LIMIT_OFF


def _items(value: str) -> list[RateLimitItem]:
    return [] if is_off(value) else parse_many(value)


def _per(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


def _describe(item: RateLimitItem) -> str:
    return f"{item.amount} per {_per(item)}"


class RateLimiter:
    """The configured limits over counters in Redis.

    Args:
        settings: ``MAIE_RATE_LIMIT`` and ``MAIE_RATE_LIMIT_SUBMIT``.
        client: An async client whose connection pool (the task store's) the counters use.
    """

    def __init__(self, settings: RateLimitSettings, client: aioredis.Redis) -> None:
        self.limits: dict[str, list[RateLimitItem]] = {
            "requests": _items(settings.rate_limit),
            "submissions": _items(settings.rate_limit_submit),
        }
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=RATE_LIMIT_PREFIX,
            connection_pool=client.connection_pool,  # type: ignore[arg-type]  # documented option, typed too narrowly
        )
        self.strategy = SlidingWindowCounterRateLimiter(storage)

    async def hit(self, api_key: str, scope: Scope) -> None:
        """Count one request of ``api_key`` against the ``scope`` limits.

        Raises:
            RateLimitedError: when a limit is used up; ``retry_after_s`` says when a slot frees.
        """
        identity = hashlib.sha256(api_key.encode()).hexdigest()[:32]
        for item in self.limits[scope]:
            try:
                if await self.strategy.hit(item, scope, identity):
                    continue
                stats = await self.strategy.get_window_stats(item, scope, identity)
            except _UNREACHABLE as exc:
                log.warning("rate_limit.unchecked", reason=str(exc))
                return
            retry_after_s = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimitedError(
                f"this API key sent more than {item.amount} {scope} per {_per(item)} ({_VARIABLES[scope]}); "
                f"retry after {retry_after_s} s",
                retry_after_s=retry_after_s,
                extra={"limit": _describe(item), "scope": scope},
            )
