"""How many live sessions run: per process (in memory) and per API key (in Redis, across processes).

A session holds one of the process's ``MAIE_STREAM_MAX_SESSIONS`` places and a lease in its key's
sorted set (``maie:stream:key:<hash>:sessions``, members scored by expiry), taken with the check
in one Lua call so that concurrent sessions of one key in several processes cannot overshoot
``MAIE_STREAM_MAX_SESSIONS_PER_KEY``. The lease is renewed while the session runs and removed when
it ends; a process that dies leaves leases that expire after :data:`LEASE_S`. The same members go
into ``maie:stream:sessions``, the deployment's open sessions (the ``maie_stream_sessions_open``
gauge).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Final, Self

import structlog

from maie.errors import StoreUnavailableError, StreamLimitError
from maie.store.keys import REDIS_DOWN, STREAM_OPEN_LUA, STREAM_SESSIONS_KEY, stream_key_sessions_key

if TYPE_CHECKING:
    from types import TracebackType

    import redis.asyncio as aioredis

    from maie.config import StreamSettings

__all__ = ["LEASE_S", "SessionLease", "SessionLeases"]

log = structlog.get_logger(__name__)

#: Seconds a session's lease lasts unless renewed; renewed every third of it.
LEASE_S: Final = 60.0


class SessionLeases:
    """The places of one process and the leases of its sessions.

    Args:
        settings: ``MAIE_STREAM_MAX_SESSIONS`` and ``MAIE_STREAM_MAX_SESSIONS_PER_KEY``.
        client: A client on the results database (the task store's).
    """

    def __init__(self, settings: StreamSettings, client: aioredis.Redis) -> None:
        self.max_sessions = settings.max_sessions
        self.max_per_key = settings.max_sessions_per_key
        self.client = client
        self._open_script = client.register_script(STREAM_OPEN_LUA)
        self._process = f"{socket.gethostname()}:{os.getpid()}"
        #: Sessions of this process now.
        self.open = 0

    async def take(self, api_key: str) -> SessionLease:
        """A place in this process and a lease under ``api_key``.

        Raises:
            StreamLimitError: when the process or the key has as many sessions as allowed.
            StoreUnavailableError: when Redis cannot be reached.
        """
        if self.open >= self.max_sessions:
            raise StreamLimitError(
                f"this server runs {self.open} live sessions, its limit (MAIE_STREAM_MAX_SESSIONS="
                f"{self.max_sessions}); try again later or another server"
            )
        self.open += 1
        try:
            lease = SessionLease(
                self, stream_key_sessions_key(api_key), f"{self._process}:{uuid.uuid4().hex}"
            )
            await lease.acquire()
        except BaseException:
            self.open -= 1
            raise
        return lease


class SessionLease:
    """One session's place and lease; renewed in the background until :meth:`release`."""

    def __init__(self, leases: SessionLeases, key: str, member: str) -> None:
        self._leases = leases
        self._key = key
        self.member = member
        self._renewer: asyncio.Task[None] | None = None
        self._released = False

    async def acquire(self) -> None:
        """Take the lease in Redis (see :class:`SessionLeases.take`)."""
        leases = self._leases
        now = time.time()
        try:
            open_now = int(
                await leases._open_script(  # noqa: SLF001 - the two classes are one mechanism
                    keys=[self._key, STREAM_SESSIONS_KEY],
                    args=[now, leases.max_per_key, self.member, now + LEASE_S],
                )
            )
        except REDIS_DOWN as exc:
            raise StoreUnavailableError(f"the session store (Redis) cannot be reached: {exc}") from exc
        if open_now >= 0:
            raise StreamLimitError(
                f"this API key has {open_now} live sessions open, its limit "
                f"(MAIE_STREAM_MAX_SESSIONS_PER_KEY={leases.max_per_key}); close one first"
            )
        self._renewer = asyncio.get_running_loop().create_task(self._renew(), name="maie-stream-lease")

    async def _renew(self) -> None:
        client = self._leases.client
        while True:
            await asyncio.sleep(LEASE_S / 3)
            expiry = time.time() + LEASE_S
            try:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.zadd(self._key, {self.member: expiry}, xx=True)
                    pipe.zadd(STREAM_SESSIONS_KEY, {self.member: expiry}, xx=True)
                    pipe.pexpire(self._key, int(LEASE_S * 1000))
                    await pipe.execute()
            except REDIS_DOWN as exc:  # the session goes on; its lease may lapse meanwhile
                log.warning("stream.lease_not_renewed", reason=str(exc))

    async def release(self) -> None:
        """Give the place and the lease back. Safe to call twice."""
        if self._released:
            return
        self._released = True
        self._leases.open -= 1
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        try:
            async with self._leases.client.pipeline(transaction=False) as pipe:
                pipe.zrem(self._key, self.member)
                pipe.zrem(STREAM_SESSIONS_KEY, self.member)
                await pipe.execute()
        except REDIS_DOWN as exc:
            log.warning("stream.lease_not_released", reason=str(exc), expires_in_s=LEASE_S)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()
