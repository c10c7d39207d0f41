"""GET /health's Redis side: the ping and the heartbeat count in one round trip, on a real Redis."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from maie.api.routes.health import redis_health
from maie.store import WORKER_HEARTBEAT_WINDOW_S, WORKERS_KEY

if TYPE_CHECKING:
    import redis

    from maie.up.redis import EmbeddedRedis


class CountingConnection(aioredis.Connection):
    """A real Redis connection that counts the packets it sends (one per round trip)."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        await super().send_packed_command(command, check_health)


def _probe(url: str) -> tuple[tuple[bool, bool], int]:
    async def run() -> tuple[tuple[bool, bool], int]:
        pool = aioredis.ConnectionPool.from_url(url, connection_class=CountingConnection)
        client = aioredis.Redis(connection_pool=pool)
        try:
            await client.ping()  # connect first: the handshake is not the probe's
            before = CountingConnection.sends
            answer = await redis_health(SimpleNamespace(client=client))  # type: ignore[arg-type]
            return answer, CountingConnection.sends - before
        finally:
            await client.aclose()

    return asyncio.run(run())


class TestRedisHealth:
    def test_one_round_trip_no_worker(self, redis_server: EmbeddedRedis, redis_client: redis.Redis):
        """Redis answers and no heartbeat is recent: connected, no worker, one packet sent."""
        redis_client.zadd(WORKERS_KEY, {"old-worker": time.time() - 10 * WORKER_HEARTBEAT_WINDOW_S})
        try:
            answer, sends = _probe(redis_server.url)
        finally:
            redis_client.zrem(WORKERS_KEY, "old-worker")
        assert answer == (True, False)
        assert sends == 1

    def test_a_recent_heartbeat_counts(self, redis_server: EmbeddedRedis, redis_client: redis.Redis):
        """A worker heartbeat within the window makes ``worker_active`` true, still in one round trip."""
        redis_client.zadd(WORKERS_KEY, {"live-worker": time.time()})
        try:
            answer, sends = _probe(redis_server.url)
        finally:
            redis_client.zrem(WORKERS_KEY, "live-worker")
        assert answer == (True, True)
        assert sends == 1

    def test_redis_away_is_reported_not_raised(self):
        """Nothing listens on the port: both answers false, no exception out of the probe."""

        async def run() -> tuple[bool, bool]:
            client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
            try:
                return await redis_health(SimpleNamespace(client=client))  # type: ignore[arg-type]
            finally:
                await client.aclose()

        assert asyncio.run(run()) == (False, False)
