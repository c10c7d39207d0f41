"""What a process that runs live sessions holds: the models, the session places, the decode threads.

Built once in the lifespan of the app that runs sessions (``maie stream``, or ``maie api`` when
``MAIE_STREAM_URL`` is unset) and closed with it. Models load on a backend's first session, or at
start for the backends of ``MAIE_STREAM_PRELOAD``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import structlog

from maie.api.stream.leases import SessionLeases
from maie.pipeline.streaming import StreamingEngine

if TYPE_CHECKING:
    from maie.api.services import Services

__all__ = ["StreamService"]

log = structlog.get_logger(__name__)


class StreamService:
    """The live-session side of one process."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.engine = StreamingEngine(settings)
        self.leases = SessionLeases(settings.stream, services.store.client)
        #: Threads for the sessions' blocking calls (open, poll, finish): each session runs one at a
        #: time, and they do not take the threads the rest of the API shares.
        self.threads = anyio.CapacityLimiter(2 * settings.stream.max_sessions)

    async def preload(self, backends: tuple[str, ...]) -> None:
        """Load the models of ``backends`` now, off the event loop."""
        if backends:
            await anyio.to_thread.run_sync(self.engine.preload, *backends, limiter=self.threads)
            log.info("stream.preloaded", backends=list(backends))

    async def close(self) -> None:
        """Unload the models and stop the recognizer processes."""
        await anyio.to_thread.run_sync(self.engine.close)
