"""The clients retry a 409 "in progress" when they sent an Idempotency-Key, and only then.

The server is an ``httpx.MockTransport`` (a test double) that answers 409 twice, then 202: what an
API answers while the first request with a key is handled, or while a killed API's mark lives.
"""

from __future__ import annotations

import httpx
import pytest

from maie.client import AsyncMaieClient, MaieClient
from maie.client import _http as client_http
from maie.errors import ConflictError

ACCEPTED = {
    "task_id": "00000000-0000-4000-8000-000000000001",
    "status": "PENDING",
    "status_url": "/v1/status/x",
}
BUSY = {"detail": "a request with Idempotency-Key 'k' is still being processed", "status_code": 409}


@pytest.fixture
def server(monkeypatch):
    """409, 409, then 202; counts the requests. Back-off pauses are made instant."""
    monkeypatch.setattr(client_http, "MAX_BACKOFF_S", 0.0)
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= 2:
            return httpx.Response(409, json=BUSY)
        return httpx.Response(202, json=ACCEPTED)

    return httpx.MockTransport(answer), seen


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF")
    return path


class TestConflictRetry:
    def test_sync_client_retries_409_with_a_key(self, server, clip):
        transport, seen = server
        with MaieClient("http://maie", "k", transport=transport) as client:
            accepted = client.submit(clip, idempotency_key="k", features=["raw_transcript"])
        assert accepted.task_id == ACCEPTED["task_id"]
        assert len(seen) == 3
        assert {r.headers["Idempotency-Key"] for r in seen} == {"k"}

    async def test_async_client_retries_409_with_a_key(self, server, clip):
        transport, seen = server
        async with AsyncMaieClient("http://maie", "k", transport=transport) as client:
            accepted = await client.submit(clip, idempotency_key="k", features=["raw_transcript"])
        assert accepted.task_id == ACCEPTED["task_id"]
        assert len(seen) == 3

    def test_without_a_key_a_409_is_an_answer(self, server, clip):
        transport, seen = server
        with MaieClient("http://maie", "k", transport=transport) as client, pytest.raises(ConflictError):
            client.submit(clip, features=["raw_transcript"])
        assert len(seen) == 1
