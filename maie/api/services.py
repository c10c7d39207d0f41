"""What the route handlers share: settings, the task store, the broker and the template catalog.

One :class:`Services` is built per app in the lifespan and handed to handlers by dependency
injection, so nothing is a module-level global.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.to_thread
import redis.exceptions

from maie.api.intake.idempotency import IntakeOwner
from maie.api.rate_limit import RateLimiter, is_off
from maie.api.status_bodies import StatusBodies
from maie.api.waiting import TaskWaiter
from maie.errors import StoreUnavailableError
from maie.metrics import ApiMetrics
from maie.pipeline.prompts import TemplateCatalog, default_templates_dir
from maie.pipeline.sandbox import DecodeSandbox, SandboxLimits
from maie.store import AsyncTaskStore, results_url

if TYPE_CHECKING:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    from maie.api.stream.service import StreamService
    from maie.config import Settings

__all__ = ["Services"]


class Services:
    """Long-lived objects of one API process."""

    def __init__(self, settings: Settings, *, redis_url: str, database_url: str, broker: RedisBroker) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.broker = broker
        self.store = AsyncTaskStore.from_urls(
            database_url,
            results_url(redis_url, settings.redis.results_db),
            ttl_s=settings.storage.result_ttl_s,
            settings=settings.database,
        )
        #: Each API key (encoded once, for :func:`hmac.compare_digest`) and its tenant.
        self.api_keys: tuple[tuple[bytes, str], ...] = tuple(
            (key.encode(), tenant) for key, tenant in settings.auth.tenants_by_key().items()
        )
        self.templates = TemplateCatalog(settings.storage.templates_dir or default_templates_dir())
        #: GET /v1/status bodies of tasks with a result, kept while their ETag holds.
        self.status_bodies = StatusBodies()
        #: Requests per API key, counted in Redis next to the tasks.
        self.rate_limiter = RateLimiter(settings.rate_limit, self.store.client)
        #: Whether requests are counted (MAIE_RATE_LIMIT is not off).
        self.rate_limited = not is_off(settings.rate_limit.rate_limit)
        #: The cluster-wide metrics: counted here, read by GET /metrics.
        self.metrics = ApiMetrics(
            settings, results=self.store.client, redis_url=redis_url, queue_depth=self.store.queue_depth
        )
        #: Wakes requests that wait for their task's result (the OpenAI routes).
        self.waiter = TaskWaiter(self.store, self.store.client)
        #: Live sessions, in a process that runs them (set by its lifespan); None where they are
        #: relayed to ``maie stream`` (MAIE_STREAM_URL) or not served.
        self.stream: StreamService | None = None
        #: This process as the owner of the Idempotency-Key claims and uploads it is handling.
        self.intake_owner = IntakeOwner(self.store)
        #: Where uploads are probed: a child process with MAIE_DECODE_* limits.
        self.sandbox = DecodeSandbox(
            SandboxLimits.from_settings(settings.audio), log=settings.log, process="api"
        )

    async def enqueue(self, *messages: dramatiq.Message[None]) -> None:
        """Send messages through the (blocking) broker, in order, without blocking the event loop.

        Every submission (one upload, a batch, a re-summarization) enqueues through here.

        Raises:
            StoreUnavailableError: if Redis cannot be reached.
        """
        try:
            await anyio.to_thread.run_sync(self._enqueue_all, messages)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailableError(f"the queue (Redis) cannot be reached: {exc}") from exc

    def _enqueue_all(self, messages: tuple[dramatiq.Message[None], ...]) -> None:
        for message in messages:
            self.broker.enqueue(message)

    async def close(self) -> None:
        """Close connection pools."""
        await self.waiter.close()
        await self.metrics.close()
        await self.store.close()
        self.broker.close()
