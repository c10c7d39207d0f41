"""`maie up` on its embedded defaults: Redis with AOF, the API and a worker, supervised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import psutil
import pytest

from tests.fixtures.paths import shared_audio
from tests.fixtures.services import free_port

if TYPE_CHECKING:
    from pathlib import Path


def _children(pid: int) -> dict[str, psutil.Process]:
    """Children of `maie up` by role (api, worker, redis)."""
    found = {}
    for child in psutil.Process(pid).children():
        try:
            cmd = " ".join(child.cmdline())
        except psutil.ZombieProcess:
            continue  # exited, not yet reaped by `maie up`
        role = "redis" if "redis-server" in cmd else cmd.rsplit(" ", 1)[-1]
        found[role] = child
    return found


def _wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def up(service_env, tmp_path) -> dict:
    """`maie up` with no MAIE_REDIS_URL and no MAIE_API_KEYS, in a fresh data folder."""
    env = {k: v for k, v in service_env.items() if k not in {"MAIE_REDIS_URL", "MAIE_API_KEYS"}}
    data_dir = tmp_path / "data"
    port = free_port()
    env.update({"MAIE_DATA_DIR": str(data_dir), "MAIE_LOG_FORMAT": "console"})
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "maie", "up", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def ready():
        try:
            return client.get("/health").json()["worker_active"]
        except (httpx.TransportError, ValueError):
            assert process.poll() is None, (tmp_path / "up.log").read_text()
            return False

    _wait_for(ready, 60, "maie up to serve with a worker")
    yield {"process": process, "client": client, "data_dir": data_dir, "env": env, "log": tmp_path / "up.log"}
    client.close()
    if process.poll() is None:
        process.kill()
        for child in (
            psutil.Process(process.pid).children(recursive=True) if psutil.pid_exists(process.pid) else []
        ):
            child.kill()
    log.close()


@pytest.mark.slow
class TestUp:
    """The one command a new user runs."""

    def test_serves_with_embedded_redis_and_dev_key(self, up):
        data_dir: Path = up["data_dir"]
        key = (data_dir / "dev-api-key").read_text().strip()
        assert key in up["log"].read_text(), "the generated key is printed for the user"
        assert (data_dir / "redis" / "url").read_text().startswith("redis://127.0.0.1:")
        assert (data_dir / "redis" / "appendonly.aof").exists(), "the embedded Redis persists with AOF"

        client = up["client"]
        with shared_audio("jfk_16k.wav").open("rb") as fh:
            accepted = client.post(
                "/v1/process",
                headers={"X-API-Key": key},
                files={"file": ("jfk.wav", fh)},
                data={"features": "raw_transcript"},
            )
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["task_id"]
        status = _wait_for(
            lambda: (
                (b := client.get(f"/v1/status/{task_id}", headers={"X-API-Key": key}).json())["status"]
                in {"COMPLETE", "FAILED"}
                and b
            ),
            60,
            "the task to finish",
        )
        assert status["status"] == "COMPLETE", status

    def test_dead_worker_is_restarted(self, up):
        pid = up["process"].pid
        worker = _children(pid)["worker"]
        worker.send_signal(signal.SIGKILL)
        replacement = _wait_for(
            lambda: (w := _children(pid).get("worker")) is not None and w.pid != worker.pid and w,
            30,
            "a new worker",
        )
        assert replacement.is_running()
        assert up["process"].poll() is None, "maie up itself keeps running"

    def test_extra_worker_joins_through_the_url_file(self, up, tmp_path):
        """`maie worker` with the same MAIE_DATA_DIR and no MAIE_REDIS_URL finds the embedded Redis."""
        log_path = tmp_path / "extra-worker.log"
        with log_path.open("wb") as log:
            extra = subprocess.Popen(
                [sys.executable, "-m", "maie", "worker"], env=up["env"], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            # Logged once it consumes, after its stop handlers are installed: only then is SIGTERM a
            # clean stop rather than the default death (-15) of a process still starting.
            _wait_for(
                lambda: "worker.started" in log_path.read_text() or extra.poll() is not None,
                60,
                "the extra worker to start",
            )
            assert extra.poll() is None, "the extra worker found Redis and runs"
        finally:
            extra.send_signal(signal.SIGTERM)
            assert extra.wait(timeout=30) == 0

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
    def test_clean_stop(self, up, sig):
        process = up["process"]
        children = list(_children(process.pid).values())
        assert {c.name() for c in children}, "api, worker and redis run"
        process.send_signal(sig)
        assert process.wait(timeout=60) == 0
        for child in children:
            assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        assert not (up["data_dir"] / "redis" / "url").exists(), "the URL file of a stopped server is removed"

    def test_children_do_not_outlive_a_killed_supervisor(self, up):
        """SIGKILL of `maie up` itself: Redis, API and workers get SIGTERM and exit (no orphans)."""
        process = up["process"]
        children = list(_children(process.pid).values())
        assert len(children) == 3
        process.send_signal(signal.SIGKILL)
        process.wait()
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [c.cmdline() for c in alive]
        assert len(gone) == 3


def test_api_without_redis_explains(tmp_path):
    """`maie api` with no MAIE_REDIS_URL and no embedded server says what to do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIE_")}
    env.update({"MAIE_DATA_DIR": str(tmp_path), "MAIE_API_KEYS": "k"})
    result = subprocess.run(
        [sys.executable, "-m", "maie", "api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "maie up" in result.stderr
    assert "MAIE_REDIS_URL" in result.stderr


def test_invalid_config_names_the_variable(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIE_")}
    env.update({"MAIE_DATA_DIR": str(tmp_path), "MAIE_PORT": "eighty"})
    result = subprocess.run(
        [sys.executable, "-m", "maie", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "MAIE_PORT='eighty'" in result.stderr
