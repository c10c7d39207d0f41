"""What stays in Redis: worker heartbeats and loaded models, and the URL of its MAIE database."""

from __future__ import annotations

import pytest

from maie.store import results_url


class TestResultsUrl:
    """The live-state database is named in the URL, whatever database the broker URL names."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("redis://h:6379/0", "redis://h:6379/1"),
            ("redis://:pw@h:6379", "redis://:pw@h:6379/1"),
            ("rediss://h/5", "rediss://h/1"),
            ("unix:///run/redis.sock?db=0", "unix:///run/redis.sock?db=1"),
        ],
    )
    def test_rewrites_database(self, url, expected):
        assert results_url(url, 1) == expected


class TestWorkers:
    """Heartbeats the worker's store writes and the API's store reads."""

    async def test_loaded_models_are_counted_over_live_workers(self, store, async_store):
        """Each heartbeat says which models its worker holds; a stale or retired worker counts for none."""
        store.heartbeat("w1", models=["whisper:a", "whisper:b"])
        store.heartbeat("w2", models=["whisper:a"])
        store.heartbeat("w3")  # a worker that does not report models

        assert await async_store.loaded_models() == {"whisper:a": 2, "whisper:b": 1}
        store.heartbeat("w1", models=[])  # it unloaded everything
        assert await async_store.loaded_models() == {"whisper:a": 1}
        store.client.zadd("maie:workers", {"w2": 1.0})  # its last beat is long gone
        assert await async_store.loaded_models() == {}
        store.heartbeat("w2", models=["whisper:b"])
        store.retire("w2")
        assert await async_store.loaded_models() == {}
        assert not store.client.exists("maie:workers:w2:models")

    async def test_workers_active(self, store, async_store):
        assert await async_store.workers_active() is False
        store.heartbeat("w1")
        assert await async_store.workers_active() is True
        store.retire("w1")
        assert await async_store.workers_active() is False
