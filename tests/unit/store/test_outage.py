"""PostgreSQL going away and coming back: the stores say 503, never a driver error, and recover."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psutil
import pytest

from maie.errors import StoreUnavailableError
from maie.store import AsyncTaskStore, TaskStore
from maie.store.sql import records, upgrade
from maie.up.postgres import EmbeddedPostgres
from tests.fixtures.postgres import TEST_SETTINGS
from tests.fixtures.records import make_record


@pytest.fixture
def server():
    """A server of this test's own, which it may kill."""
    folder = Path(tempfile.mkdtemp(prefix="maie-test-postgres-"))
    server = EmbeddedPostgres(folder / "postgres", durable=False)
    upgrade(server.start())
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _kill(server: EmbeddedPostgres) -> None:
    """SIGKILL the postmaster and every backend at once, like a crash of the machine.

    Each backend is a session of its own (PostgreSQL calls setsid), so they are killed one by one.
    """
    assert server.process is not None
    processes = [psutil.Process(server.process.pid)]
    processes += processes[0].children(recursive=True)
    for process in processes:
        process.kill()
    psutil.wait_procs(processes, timeout=10)
    server.process.wait()
    assert not server.running


class TestOutage:
    """Killed (SIGKILL, no shutdown) while the stores hold open connections."""

    def test_blocking_store(self, server, results_db):
        store = TaskStore.from_urls(server.url, results_db, settings=TEST_SETTINGS)
        store.database.run(records.create(make_record()))
        assert store.get("t1").task_id == "t1"
        _kill(server)
        with pytest.raises(StoreUnavailableError, match=r"PostgreSQL\) cannot be reached"):
            store.get("t1")
        assert store.ping() is False
        server.start()
        assert store.get("t1").task_id == "t1", "the first call after the restart succeeds"
        store.close()

    async def test_async_store(self, server, results_db):
        store = AsyncTaskStore.from_urls(server.url, results_db, ttl_s=60, settings=TEST_SETTINGS)
        await store.create(make_record())
        _kill(server)
        with pytest.raises(StoreUnavailableError):
            await store.get("t1")
        with pytest.raises(StoreUnavailableError):
            await store.update("t1", lambda _: None)
        server.start()
        assert (await store.get("t1")).task_id == "t1"
        assert await store.queue_depth() == 1
        await store.close()

    async def test_a_clean_restart_is_invisible(self, server, results_db):
        """Pooled connections the server closed are replaced when taken, without failing a request."""
        store = AsyncTaskStore.from_urls(server.url, results_db, ttl_s=60, settings=TEST_SETTINGS)
        await store.create(make_record())
        for _ in range(3):  # several pooled connections
            await store.get("t1")
        server.restart()
        for _ in range(5):
            assert (await store.get("t1")).task_id == "t1"
        await store.close()
