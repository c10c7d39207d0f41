"""Idempotency-Key claims against a real PostgreSQL: one winner, repeats, mismatches, release."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from litestar.datastructures import UploadFile

from maie.api.intake.idempotency import OWNER_TTL_S, Accepted, IdempotencyClaim, IntakeOwner, pending_ttl_s
from maie.config import Settings
from maie.errors import ConflictError, UnprocessableError
from maie.schemas import Feature, TaskRequest
from maie.store.keys import intake_owner_key
from tests.fixtures.postgres import query

REQUEST = TaskRequest(features=[Feature.RAW_TRANSCRIPT], asr_backend="whisper", filename="a.wav")


@pytest.fixture
def store(async_store):
    """The API's async store (tests/fixtures/store.py): these tests use it by that name."""
    return async_store


def _claim(store, key, request=REQUEST, kind="task", tenant="acme"):
    return IdempotencyClaim(store, tenant, key, kind=kind, request=request)


async def _always(_):
    return True


class TestClaims:
    """Two requests with one key never both create a task."""

    async def test_concurrent_claims_have_one_winner(self, store):
        key = str(uuid.uuid4())
        claims = [_claim(store, key) for _ in range(8)]
        outcomes = await asyncio.gather(
            *(c.claim(f"task-{n}", exists=_always) for n, c in enumerate(claims)), return_exceptions=True
        )
        winners = [o for o in outcomes if o is None]
        assert len(winners) == 1
        assert all(isinstance(o, ConflictError) for o in outcomes if o is not None), outcomes

    async def test_repeat_after_commit_returns_first_id(self, store):
        key = str(uuid.uuid4())
        first = _claim(store, key)
        assert await first.claim("task-1", exists=_always) is None
        await first.commit()
        assert await _claim(store, key).claim("task-2", exists=_always) == "task-1"
        assert await _claim(store, key, tenant="other").claim("task-3", exists=_always) is None, "per tenant"

    async def test_different_request_or_kind_is_refused(self, store):
        key = str(uuid.uuid4())
        first = _claim(store, key)
        await first.claim("task-1", exists=_always)
        await first.commit()
        changed = TaskRequest(features=[Feature.RAW_TRANSCRIPT], asr_backend="whisper", language="en")
        with pytest.raises(UnprocessableError, match="different request"):
            await _claim(store, key, request=changed).claim("task-2", exists=_always)
        with pytest.raises(UnprocessableError):
            await _claim(store, key, kind="batch").claim("batch-1", exists=_always)

    async def test_the_url_fetched_counts_not_only_the_one_recorded(self, store):
        """Two URLs that differ only in a secret are recorded alike but are different requests."""
        key = str(uuid.uuid4())
        request = TaskRequest(
            features=[Feature.RAW_TRANSCRIPT],
            asr_backend="whisper",
            source_url="https://x/a.mp3?sig=REDACTED",
        )
        first = IdempotencyClaim(
            store, "acme", key, kind="task", request=request, urls=["https://x/a.mp3?sig=1"]
        )
        await first.claim("task-1", exists=_always)
        await first.commit()
        same = IdempotencyClaim(
            store, "acme", key, kind="task", request=request, urls=["https://x/a.mp3?sig=1"]
        )
        assert await same.claim("task-2", exists=_always) == "task-1"
        other = IdempotencyClaim(
            store, "acme", key, kind="task", request=request, urls=["https://x/a.mp3?sig=2"]
        )
        with pytest.raises(UnprocessableError, match="different request"):
            await other.claim("task-3", exists=_always)

    async def test_the_uploaded_bytes_count_not_only_the_filename(self, store):
        """Same key, same filename, other audio: a different request (it used to replay the first)."""
        key = str(uuid.uuid4())
        request = TaskRequest(features=[Feature.RAW_TRANSCRIPT], asr_backend="whisper", filename="a.wav")

        async def claim_with(content: bytes, new_id: str) -> str | None:
            upload = UploadFile(content_type="audio/wav", filename="a.wav", max_spool_size=4)
            await upload.write(content)  # past max_spool_size: on disk, as a large upload is
            await upload.seek(len(content) // 2)  # wherever the reader left it
            claim = IdempotencyClaim(store, "acme", key, kind="task", request=request, uploads=[upload])
            try:
                earlier = await claim.claim(new_id, exists=_always)
                await claim.commit()
                assert await upload.read() == content, "the upload is left at its start for the copy"
                return earlier
            finally:
                await upload.close()

        assert await claim_with(b"RIFF first recording", "task-1") is None
        assert await claim_with(b"RIFF first recording", "task-2") == "task-1"
        with pytest.raises(UnprocessableError, match="different request"):
            await claim_with(b"RIFF other recording!", "task-3")

    async def test_a_pending_claim_of_a_dead_process_is_taken_over(self, store):
        """An API killed mid-request leaves its claim pending: the next request takes the key over."""
        key = str(uuid.uuid4())
        dead, alive = IntakeOwner(store), IntakeOwner(store)
        await dead.beat()
        await alive.beat()
        first = IdempotencyClaim(store, "acme", key, kind="task", request=REQUEST, owner=dead)
        assert await first.claim("task-1", exists=_always) is None  # and then the process is killed
        retry = IdempotencyClaim(store, "acme", key, kind="task", request=REQUEST, owner=alive)
        with pytest.raises(ConflictError, match="still being processed"):
            await retry.claim("task-2", exists=_always)  # its owner's mark still lives
        await dead.retire()  # the mark lapses (OWNER_TTL_S after the last beat)
        assert not await alive.is_alive(dead.id)
        assert await retry.claim("task-2", exists=_always) is None, "the key is free for the retry"
        await retry.commit()
        assert await _claim(store, key).claim("task-3", exists=_always) == "task-2"

    async def test_an_owner_mark_lives_for_its_ttl(self, store, database):
        owner, other = IntakeOwner(store), IntakeOwner(store)
        assert not await other.is_alive(owner.id), "never beat: not alive"
        await owner.beat()
        assert await other.is_alive(owner.id)
        rows = query(
            database,
            "SELECT extract(epoch FROM expires_at - now()) FROM idempotency_claims WHERE key = %s",
            intake_owner_key(owner.id),
        )
        assert len(rows) == 1
        assert 0 < rows[0][0] <= OWNER_TTL_S
        assert await other.is_alive(owner.id), "probing leaves the mark as it was"

    def test_a_pending_claim_lasts_what_an_intake_can_take(self):
        settings = Settings.from_env({"MAIE_DECODE_TIME_LIMIT_S": "30"}, env_file=None)
        assert pending_ttl_s(settings) == 90
        assert pending_ttl_s(Settings.from_env({}, env_file=None)) < 900

    async def test_release_frees_the_key_but_only_its_own(self, store):
        key = str(uuid.uuid4())
        first = _claim(store, key)
        await first.claim("task-1", exists=_always)
        await first.release()
        second = _claim(store, key)
        assert await second.claim("task-2", exists=_always) is None
        await first.release()  # a second release of the first claim must not free the second's
        with pytest.raises(ConflictError):
            await _claim(store, key).claim("task-3", exists=_always)

    async def test_expired_first_task_frees_the_key(self, store):
        key = str(uuid.uuid4())
        first = _claim(store, key)
        await first.claim("task-1", exists=_always)
        await first.commit()

        async def gone(_):
            return False

        assert await _claim(store, key).claim("task-2", exists=gone) is None

    async def test_no_key_is_a_no_op(self, store, database):
        claim = _claim(store, None)
        assert await claim.claim("task-1", exists=_always) is None
        await claim.commit()
        with psycopg.connect(database) as conn:
            assert conn.execute("SELECT count(*) FROM idempotency_claims").fetchone() == (0,)


class TestOnce:
    """The whole flow accept_task and accept_batch share: claim, create or replay, commit or release."""

    @staticmethod
    def _flow(made: list[str]):
        async def create(new_id: str) -> Accepted[str]:
            made.append(new_id)
            return Accepted(f"body of {new_id}", f"/v1/status/{new_id}")

        async def replay(earlier: str) -> Accepted[str]:
            return Accepted(f"body of {earlier}", f"/v1/status/{earlier}")

        return create, replay

    async def test_a_repeat_gets_the_first_answer_without_creating(self, store):
        key, made = str(uuid.uuid4()), []
        create, replay = self._flow(made)
        first = await _claim(store, key).once(
            "t1", exists=_always, replay=replay, create=lambda: create("t1")
        )
        again = await _claim(store, key).once(
            "t2", exists=_always, replay=replay, create=lambda: create("t2")
        )
        assert made == ["t1"]
        assert (first.body, first.replayed, first.headers) == (
            "body of t1",
            False,
            {"Location": "/v1/status/t1"},
        )
        assert (again.body, again.replayed) == ("body of t1", True)
        assert again.headers == {"Location": "/v1/status/t1", "Idempotent-Replayed": "true"}

    async def test_a_failed_create_gives_the_key_back(self, store):
        key, made = str(uuid.uuid4()), []
        create, replay = self._flow(made)

        async def broken() -> Accepted[str]:
            raise RuntimeError("disk full")

        with pytest.raises(RuntimeError, match="disk full"):
            await _claim(store, key).once("t1", exists=_always, replay=replay, create=broken)
        retried = await _claim(store, key).once(
            "t2", exists=_always, replay=replay, create=lambda: create("t2")
        )
        assert (retried.body, retried.replayed, made) == ("body of t2", False, ["t2"])
