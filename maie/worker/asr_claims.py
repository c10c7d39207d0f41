"""Who is transcribing which task: leases on Redis, and the tasks waiting for ASR.

Batching (``MAIE_ASR_BATCH_MAX_TASKS`` > 1) lets the worker that handles one task's ``transcribe``
message transcribe other waiting tasks in the same pass. Dramatiq's at-least-once delivery is left
intact: every task keeps its own message, and batching only does that message's work early.

- ``maie:asr:ready:<group>`` (sorted set, by time) lists tasks whose audio is preprocessed and
  whose transcript is not stored yet: the candidates for a batch. A group is a backend, or a
  backend and a model variant (``whisper:large``), so that a batch runs on one model.
- ``maie:task:<id>:asr-claim`` is a lease: whoever holds it transcribes the task. It is taken with
  ``SET NX PX``, renewed every few seconds while the work runs, and deleted (only by its holder)
  when the transcript is stored. A message whose task is claimed elsewhere waits until the
  transcript appears or the lease lapses.

So a task is never transcribed by two workers at once, and never lost: if the holder dies, its
lease lapses within :attr:`AsrClaims.lease_s` and the task's own message (still queued, or handed
back by Dramatiq) takes the lease and does the work.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import structlog

from maie.errors import StoreUnavailableError
from maie.store.keys import REDIS_DOWN, RELEASE_LUA, asr_claim_key, asr_ready_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import redis

__all__ = ["AsrClaims"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Extends a lease only if its value is still the caller's token (RELEASE_LUA deletes it so).
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


class AsrClaims:
    """Leases and the ready set, on the task store's Redis client. Thread-safe."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        lease_s: float = 60.0,
        ttl_s: int = 86400,
        poll_s: float = 0.5,
        owner: str | None = None,
    ) -> None:
        self.client = client
        #: Seconds a lease lives without renewal: how long a dead holder delays its tasks.
        self.lease_s = lease_s
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.owner = owner or uuid.uuid4().hex
        self._release = client.register_script(RELEASE_LUA)
        self._renew = client.register_script(_RENEW)
        self._held: dict[str, str] = {}  # task id → token, renewed by the keeper thread
        self._lock = threading.Lock()
        self._keeper: threading.Thread | None = None
        self._closed = threading.Event()

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except REDIS_DOWN as exc:
            raise StoreUnavailableError(f"Redis cannot be reached: {exc}") from exc

    def mark_ready(self, task_id: str, group: str) -> None:
        """List ``task_id`` as waiting in ``group`` (a backend, or backend:variant; idempotent)."""
        key = asr_ready_key(group)
        with self.client.pipeline() as pipe:
            pipe.zadd(key, {task_id: time.time()}, nx=True)
            pipe.expire(key, self.ttl_s)
            self._call(pipe.execute)

    def mark_done(self, task_id: str, group: str) -> None:
        """Remove ``task_id`` from the waiting list of ``group``."""
        self._call(lambda: self.client.zrem(asr_ready_key(group), task_id))

    def waiting(self, group: str, limit: int) -> list[str]:
        """Up to ``limit`` waiting task ids of ``group``, oldest first (those older than the TTL dropped)."""
        key = asr_ready_key(group)
        self._call(lambda: self.client.zremrangebyscore(key, 0, time.time() - self.ttl_s))
        ids = self._call(lambda: self.client.zrange(key, 0, limit - 1))
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def try_claim(self, task_id: str) -> bool:
        """Take the lease of ``task_id`` if nobody holds it; renewed until :meth:`release`."""
        token = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        taken = self._call(
            lambda: self.client.set(asr_claim_key(task_id), token, nx=True, px=int(self.lease_s * 1000))
        )
        if not taken:
            return False
        with self._lock:
            self._held[task_id] = token
            self._start_keeper()
        return True

    def holder(self, task_id: str) -> str | None:
        """The token of whoever holds the lease of ``task_id``, or ``None``."""
        value = self._call(lambda: self.client.get(asr_claim_key(task_id)))
        return value.decode() if isinstance(value, bytes) else value

    def release(self, task_id: str) -> None:
        """Give the lease back (only if this process still holds it)."""
        with self._lock:
            token = self._held.pop(task_id, None)
        if token is not None:
            try:
                self._call(lambda: self._release(keys=[asr_claim_key(task_id)], args=[token]))
            except StoreUnavailableError:
                log.warning("asr.claim_release_failed", claimed_task=task_id)  # it lapses on its own

    def claim_or_wait(self, task_id: str, done: Callable[[], bool]) -> bool:
        """Take the lease of ``task_id``, waiting while someone else holds it.

        Args:
            task_id: The task.
            done: Whether the transcript is stored already (checked before each attempt).

        Returns:
            True when the lease is now held here; False when ``done()`` became true meanwhile.
        """
        waited = False
        while True:
            if done():
                return False
            if self.try_claim(task_id):
                if waited:
                    log.info("asr.claim_taken_over")
                return True
            if not waited:
                log.info("asr.claimed_elsewhere", holder=self.holder(task_id))
                waited = True
            time.sleep(self.poll_s)

    @contextmanager
    def holding(self, task_ids: list[str]) -> Iterator[None]:
        """Release the leases of ``task_ids`` when the block ends, however it ends."""
        try:
            yield
        finally:
            for task_id in task_ids:
                self.release(task_id)

    def close(self) -> None:
        """Stop renewing (held leases then lapse on their own); call before closing the client."""
        self._closed.set()
        keeper = self._keeper
        if keeper is not None and keeper is not threading.current_thread():
            keeper.join(timeout=5)

    def _start_keeper(self) -> None:
        if self._closed.is_set():
            return
        if self._keeper is None or not self._keeper.is_alive():
            self._keeper = threading.Thread(target=self._keep, name="maie-asr-claims", daemon=True)
            self._keeper.start()

    def _keep(self) -> None:
        """Renew held leases every third of the lease; stop when none are held or on close."""
        while not self._closed.wait(self.lease_s / 3):
            with self._lock:
                held = dict(self._held)
                if not held:
                    self._keeper = None
                    return
            for task_id, token in held.items():
                try:
                    renewed = self._renew(
                        keys=[asr_claim_key(task_id)], args=[token, int(self.lease_s * 1000)]
                    )
                except REDIS_DOWN:
                    log.warning("asr.claim_renew_failed", claimed_task=task_id)
                    continue
                with self._lock:
                    still_held = self._held.get(task_id) == token
                if not renewed and still_held:  # not merely released since the snapshot
                    log.warning("asr.claim_lost", claimed_task=task_id)
        with self._lock:
            self._keeper = None
