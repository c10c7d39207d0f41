"""``Idempotency-Key`` on submissions: a repeat returns what the first request created.

A client that did not see the answer to a submission (a timeout, a dropped connection) sends it
again with the same key and gets the same task (or batch) back instead of a second one, for as
long as task records live (``MAIE_RESULT_TTL_S``). Keys are per tenant.

The key is claimed in Redis (``SET NX``) before any file is moved, so of two concurrent requests
with one key exactly one creates the task; the other gets ``409 Conflict`` while the first is in
progress, and the first task once it is created. A repeat whose parameters differ from the
first request's is refused with 422, as it is most likely a client bug (a recording's URL is
part of the request: the whole URL, secret query values included, counts; so are the uploaded
files' bytes, by their sha256, so the same key and filename with other audio is refused too). A
request that fails releases its claim, so the client can retry with the same key.

An API process killed in the middle of a request cannot release its claim. Every pending claim
names its owner (:class:`IntakeOwner`: one per API process, alive while its mark in the store is
refreshed, every :data:`OWNER_BEAT_S` seconds for :data:`OWNER_TTL_S`); a request that finds a
pending claim whose owner's mark is gone takes the key over, so a retry after a crash waits
seconds, not until the claim expires. The claim itself expires after what an intake can take
once its body has arrived (:func:`pending_ttl_s`: the copy and the decode-time limit of the probe).

Store calls used: ``claim`` (set if free, else what holds it), ``replace_claim`` (overwrite one's
own key), ``release_claim`` (delete if it still holds a value), ``ttl_s``.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from typing import IO, TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import anyio.to_thread
import msgspec
import structlog

from maie.errors import ConflictError, InvalidRequestError, StoreUnavailableError, UnprocessableError
from maie.store.keys import idempotency_key, intake_owner_key

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from litestar.connection import ASGIConnection
    from litestar.datastructures import UploadFile

    from maie.config import Settings
    from maie.store import AsyncTaskStore

__all__ = [
    "HEADER",
    "OWNER_BEAT_S",
    "OWNER_TTL_S",
    "Accepted",
    "IdempotencyClaim",
    "IntakeOwner",
    "pending_ttl_s",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Request header carrying the key.
HEADER = "Idempotency-Key"
#: Longest key accepted.
MAX_KEY_LENGTH = 255
#: Seconds an API process's owner mark lives without a refresh: how long a crashed process's
#: claims (and upload folders) go on counting as in progress.
OWNER_TTL_S = 15
#: Seconds between refreshes of the owner mark.
OWNER_BEAT_S = 5
#: Seconds an intake may spend copying an upload that has arrived (a local copy, a few GB at most).
COPY_BUDGET_S = 60
#: What an owner mark holds.
_ALIVE = b"alive"


def pending_ttl_s(settings: Settings) -> int:
    """Seconds a pending claim lives: what an intake can take once its body has arrived.

    The claim is taken after the body is read; then the upload is copied and probed, which the
    decode sandbox stops after ``MAIE_DECODE_TIME_LIMIT_S``.
    """
    return math.ceil(settings.audio.decode_time_limit_s) + COPY_BUDGET_S


class IntakeOwner:
    """This API process as the owner of the claims and upload folders it is working on."""

    def __init__(self, store: AsyncTaskStore) -> None:
        self.store = store
        #: A new id per process: a restarted API is another owner.
        self.id = uuid.uuid4().hex

    async def beat(self) -> None:
        """Refresh this process's mark (only this process writes it, so overwriting is safe)."""
        await self.store.replace_claim(intake_owner_key(self.id), _ALIVE, OWNER_TTL_S)

    async def retire(self) -> None:
        """Remove the mark on a clean shutdown: nothing of this process is in progress any more."""
        await self.store.release_claim(intake_owner_key(self.id), _ALIVE)

    async def is_alive(self, owner_id: str) -> bool:
        """Whether the process ``owner_id`` refreshed its mark within :data:`OWNER_TTL_S`."""
        if owner_id == self.id:
            return True
        # Only claim/release exist to read a key with: a probe that finds the key free was the
        # only thing there, and is removed at once.
        probe = b"probe:" + uuid.uuid4().hex.encode()
        held = await self.store.claim(intake_owner_key(owner_id), probe, 1)
        if held is None:
            await self.store.release_claim(intake_owner_key(owner_id), probe)
            return False
        return not held.startswith(b"probe:")


class _Entry(msgspec.Struct, frozen=True, kw_only=True):
    """What a key holds: the task or batch made for it, and the request it was made for."""

    kind: str
    id: str
    fingerprint: str
    done: bool = False
    #: The :class:`IntakeOwner` handling the request while it is pending.
    owner: str | None = None


#: Bytes read at a time when hashing an upload.
_HASH_CHUNK = 1024 * 1024


def _fingerprint(request: msgspec.Struct, urls: Sequence[str], contents: Sequence[bytes] = ()) -> str:
    digest = hashlib.sha256(msgspec.json.encode(request))
    if urls:
        # The recorded URLs are redacted; the ones fetched are not, and two requests differ by them.
        digest.update(b"\0" + msgspec.json.encode(list(urls)))
    if contents:
        digest.update(b"\1" + b"".join(contents))
    return digest.hexdigest()


def _content_digests(files: Sequence[IO[bytes]]) -> list[bytes]:
    """The sha256 of each file, read from its start and left at its start (blocking)."""
    digests = []
    for fh in files:
        fh.seek(0)
        digest = hashlib.sha256()
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
        fh.seek(0)
        digests.append(digest.digest())
    return digests


class Accepted(NamedTuple, Generic[T]):
    """The answer to a submission: what was created now, or what the first request with its key created."""

    body: T
    #: Where the task or batch can be looked at (the answer's ``Location``).
    location: str
    #: Whether ``body`` is the first request's (the ``Idempotency-Key`` was used before).
    replayed: bool = False

    @property
    def headers(self) -> dict[str, str]:
        """Headers of the 202 answer."""
        if self.replayed:
            return {"Location": self.location, "Idempotent-Replayed": "true"}
        return {"Location": self.location}


class IdempotencyClaim:
    """One request's use of an ``Idempotency-Key`` (a no-op when the request has none)."""

    def __init__(
        self,
        store: AsyncTaskStore,
        tenant: str,
        key: str | None,
        *,
        kind: str,
        request: msgspec.Struct,
        urls: Sequence[str] = (),
        uploads: Sequence[UploadFile] = (),
        owner: IntakeOwner | None = None,
        pending_ttl_s: int = 900,
    ) -> None:
        self.store = store
        self.owner = owner
        self.pending_ttl_s = pending_ttl_s
        self.key = key
        self.kind = kind
        self._redis_key = idempotency_key(tenant, key) if key else ""
        self._request = request
        self._urls = urls
        self._uploads = uploads
        self._fingerprint = ""
        self._pending: bytes | None = None

    async def _fingerprint_of_request(self) -> str:
        """The request's fingerprint, its uploads' bytes included (hashed off the event loop)."""
        if not self._fingerprint:
            contents: list[bytes] = []
            if self._uploads:
                files: list[IO[bytes]] = [upload.file for upload in self._uploads]
                contents = await anyio.to_thread.run_sync(_content_digests, files)
            self._fingerprint = _fingerprint(self._request, self._urls, contents)
        return self._fingerprint

    @classmethod
    def of(
        cls,
        connection: ASGIConnection[Any, Any, Any, Any],
        store: AsyncTaskStore,
        tenant: str,
        *,
        kind: str,
        request: msgspec.Struct,
        urls: Sequence[str] = (),
        uploads: Sequence[UploadFile] = (),
        owner: IntakeOwner | None = None,
        pending_ttl_s: int = 900,
    ) -> IdempotencyClaim:
        """The claim for ``connection``'s ``Idempotency-Key`` header, checked.

        Args:
            connection: The request.
            store: The task store.
            tenant: The caller's tenant.
            kind: ``"task"`` or ``"batch"``; a key is never shared between the two.
            request: The validated request options; a repeat must match them.
            urls: The recordings' URLs as given; a repeat must match them too.
            uploads: The uploaded files; a repeat must send the same bytes (hashed only when the
                request has a key).
            owner: This API process, named on the pending claim.
            pending_ttl_s: Seconds the pending claim lives (:func:`pending_ttl_s`).

        Raises:
            InvalidRequestError: if the key is empty, too long or not printable ASCII.
        """
        key = connection.headers.get(HEADER)
        if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()):
            raise InvalidRequestError(
                f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters (a UUID is a good choice)"
            )
        return cls(
            store,
            tenant,
            key,
            kind=kind,
            request=request,
            urls=urls,
            uploads=uploads,
            owner=owner,
            pending_ttl_s=pending_ttl_s,
        )

    async def claim(self, new_id: str, *, exists: Callable[[str], Awaitable[bool]]) -> str | None:
        """Claim the key for ``new_id``.

        Args:
            new_id: Id of the task or batch this request is about to create.
            exists: Whether an earlier task or batch id still exists; one that expired frees
                its key.

        Returns:
            None when this request should go on and create ``new_id``; the earlier id when it
            is a repeat.

        Raises:
            ConflictError: while the first request with this key is still in progress.
            UnprocessableError: if the key was first used for a different request.
        """
        if not self.key:
            return None
        fingerprint = await self._fingerprint_of_request()
        owner = self.owner.id if self.owner else None
        pending = msgspec.json.encode(_Entry(kind=self.kind, id=new_id, fingerprint=fingerprint, owner=owner))
        while True:
            held = await self.store.claim(self._redis_key, pending, self.pending_ttl_s)
            if held is None:
                self._pending = pending
                return None
            entry = msgspec.json.decode(held, type=_Entry)
            if entry.kind != self.kind or entry.fingerprint != fingerprint:
                raise UnprocessableError(
                    f"{HEADER} {self.key[:64]!r} was already used for a different request; "
                    "use a new key for a new request"
                )
            if not entry.done and entry.owner and self.owner and not await self.owner.is_alive(entry.owner):
                # Its API process died mid-request: nothing was created; take the key over.
                log.info("idempotency.orphan_claim_taken_over", owner=entry.owner)
                await self.store.release_claim(self._redis_key, held)
                continue
            if not entry.done:
                raise ConflictError(
                    f"a request with {HEADER} {self.key[:64]!r} is still being processed; "
                    "retry in a few seconds to get its answer"
                )
            if await exists(entry.id):
                return entry.id
            await self.store.release_claim(self._redis_key, held)

    async def once(
        self,
        new_id: str,
        *,
        exists: Callable[[str], Awaitable[bool]],
        replay: Callable[[str], Awaitable[Accepted[T]]],
        create: Callable[[], Awaitable[Accepted[T]]],
    ) -> Accepted[T]:
        """Create ``new_id`` once per key: claim the key, then create, or answer a repeat.

        Args:
            new_id: Id of the task or batch ``create`` makes.
            exists: Whether an earlier id still exists (see :meth:`claim`).
            replay: The answer for an earlier id, when the key was used before.
            create: Makes ``new_id`` and answers for it; whatever it raises gives the key back.

        Raises:
            ConflictError: while the first request with this key is still in progress.
            UnprocessableError: if the key was first used for a different request.
        """
        earlier = await self.claim(new_id, exists=exists)
        if earlier is not None:
            return (await replay(earlier))._replace(replayed=True)
        try:
            accepted = await create()
        except BaseException:
            await self.release()
            raise
        await self.commit()
        return accepted

    async def commit(self) -> None:
        """Mark the claim done: from now on a repeat gets this request's task or batch."""
        if self._pending is None:
            return
        entry = msgspec.json.decode(self._pending, type=_Entry)
        done = msgspec.json.encode(msgspec.structs.replace(entry, done=True))
        await self.store.replace_claim(self._redis_key, done, self.store.ttl_s)
        self._pending = None

    async def release(self) -> None:
        """Give the key back after a failed request, so a retry with it can succeed."""
        if self._pending is None:
            return
        try:
            await self.store.release_claim(self._redis_key, self._pending)
        except StoreUnavailableError:
            # Redis is away (likely why the request failed): the claim expires after
            # pending_ttl_s, and until then a retry with the key is told 409.
            log.warning("idempotency.release_failed")
        self._pending = None
