"""`maie up` on its embedded defaults: Redis with AOF, PostgreSQL, the API, streaming and a worker.

Faults are real: SIGKILL of the embedded redis-server and of the embedded PostgreSQL while tasks
run, a wipe of every Redis database, SIGTERM at every moment of a start, and a SIGTERM made to
land while the main loop holds a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import numpy as np
import psutil
import pytest
import redis

from tests.fixtures.live_client import stream_pcm
from tests.fixtures.paths import shared_audio
from tests.fixtures.services import free_port
from tests.fixtures.wer import run_ffmpeg

if TYPE_CHECKING:
    from pathlib import Path


def _children(pid: int) -> dict[str, psutil.Process]:
    """Children of `maie up` by role (api, stream, worker, redis, postgres)."""
    found = {}
    for child in psutil.Process(pid).children():
        try:
            cmd = " ".join(child.cmdline())
        except psutil.ZombieProcess:
            continue  # exited, not yet reaped by `maie up`
        if "redis-server" in cmd:
            role = "redis"
        elif "/bin/postgres " in cmd:
            role = "postgres"
        else:
            role = cmd.rsplit(" ", 1)[-1]
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


def _up_env(service_env, data_dir) -> dict[str, str]:
    """The environment of a `maie up` that runs every server itself, as on a clean checkout."""
    unset = {"MAIE_REDIS_URL", "MAIE_DATABASE_URL", "MAIE_API_KEYS"}
    env = {k: v for k, v in service_env.items() if k not in unset}
    # A port of its own for `maie stream`: other runs may have one on the default port.
    env.update(
        {"MAIE_DATA_DIR": str(data_dir), "MAIE_LOG_FORMAT": "console", "MAIE_STREAM_PORT": str(free_port())}
    )
    return env


def _kill_tree(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        descendants = psutil.Process(process.pid).children(recursive=True)
        process.kill()
        for child in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        process.wait()


def _launch(env: dict[str, str], port: int, log_path: Path) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    """Start `maie up` and wait until it serves with a worker."""
    with log_path.open("ab") as log:
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
            assert process.poll() is None, log_path.read_text()
            return False

    _wait_for(ready, 90, "maie up to serve with a worker")
    return process, client


@pytest.fixture
def up(service_env, tmp_path) -> dict:
    """`maie up` with no MAIE_REDIS_URL, MAIE_DATABASE_URL or MAIE_API_KEYS, in a fresh data folder."""
    data_dir = tmp_path / "data"
    env = _up_env(service_env, data_dir)
    port = free_port()
    process, client = _launch(env, port, tmp_path / "up.log")
    state = {
        "process": process,
        "client": client,
        "data_dir": data_dir,
        "env": env,
        "port": port,
        "log": tmp_path / "up.log",
    }
    yield state
    state["client"].close()
    _kill_tree(state["process"])


def _submit(client: httpx.Client, key: str) -> str:
    with shared_audio("jfk_16k.wav").open("rb") as fh:
        accepted = client.post(
            "/v1/process",
            headers={"X-API-Key": key},
            files={"file": ("jfk.wav", fh)},
            data={"features": "raw_transcript"},
        )
    assert accepted.status_code == 202, accepted.text
    task_id: str = accepted.json()["task_id"]
    return task_id


def _finished(client: httpx.Client, key: str, task_id: str, timeout: float = 60) -> dict:
    def done():
        try:
            response = client.get(f"/v1/status/{task_id}", headers={"X-API-Key": key})
        except httpx.TransportError:
            return False
        body = response.json() if response.status_code == 200 else {}
        return body.get("status") in {"COMPLETE", "FAILED"} and body

    return _wait_for(done, timeout, f"task {task_id} to finish")


@pytest.mark.slow
class TestUp:
    """The one command a new user runs."""

    def test_serves_with_embedded_servers_and_dev_key(self, up):
        data_dir: Path = up["data_dir"]
        key = (data_dir / "dev-api-key").read_text().strip()
        assert key in up["log"].read_text(), "the generated key is printed for the user"
        assert (data_dir / "redis" / "url").read_text().startswith("redis://127.0.0.1:")
        assert (data_dir / "redis" / "appendonly.aof").exists(), "the embedded Redis persists with AOF"
        assert (data_dir / "postgres" / "url").read_text().startswith("postgresql://postgres:")
        assert (data_dir / "postgres" / "data" / "PG_VERSION").read_text().strip() == "18"
        assert "database.migrated" in up["log"].read_text()

        status = _finished(up["client"], key, _submit(up["client"], key))
        assert status["status"] == "COMPLETE", status

    def test_streams_live_on_the_api_port(self, up):
        """A WebSocket client on the API's port is relayed to `maie stream`; the session is stored."""
        key = (up["data_dir"] / "dev-api-key").read_text().strip()
        assert "stream" in _children(up["process"].pid)
        stream_ready = f"http://127.0.0.1:{up['env']['MAIE_STREAM_PORT']}/ready"

        def serving() -> bool:
            try:
                return httpx.get(stream_ready, timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(serving, 60, "maie stream to serve")
        raw = run_ffmpeg(
            "-i", str(shared_audio("picovoice/test.wav")), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"
        )
        url = str(up["client"].base_url).replace("http://", "ws://").rstrip("/") + "/v1/stream"
        run = asyncio.run(
            stream_pcm(
                url,
                np.frombuffer(raw, dtype="<i2"),
                start={"asr_backend": "pocketsphinx"},
                headers={"Authorization": f"Bearer {key}"},
            )
        )
        assert run.finals, run.messages
        assert run.end is not None, run.messages
        assert run.close_code == 1000
        assert _finished(up["client"], key, run.end["task_id"])["status"] == "COMPLETE"

    def test_killed_redis_is_restarted_with_its_data(self, up):
        """SIGKILL of redis-server: `maie up` reaps it and starts it again on the same port and AOF.

        The API and the worker reconnect by themselves: a task finished before the kill is still
        there (in PostgreSQL), a new one completes, and the worker says it recovered at most once.
        """
        data_dir: Path = up["data_dir"]
        client: httpx.Client = up["client"]
        key = (data_dir / "dev-api-key").read_text().strip()
        url = (data_dir / "redis" / "url").read_text()
        before = _submit(client, key)
        assert _finished(client, key, before)["status"] == "COMPLETE"
        pid = up["process"].pid
        redis = _children(pid)["redis"]
        redis.send_signal(signal.SIGKILL)

        def back():
            current = _children(pid).get("redis")
            # The URL file is written once the new server answers.
            ready = (data_dir / "redis" / "url").exists()
            return current is not None and current.pid != redis.pid and ready and current

        replacement = _wait_for(back, 30, "a new redis-server")
        assert not psutil.pid_exists(redis.pid) or redis.status() != psutil.STATUS_ZOMBIE, "reaped"
        # The new server writes its URL file once it answers; until then the file is absent.
        url_file = data_dir / "redis" / "url"
        _wait_for(lambda: url_file.is_file() and url_file.read_text() != "", 30, "the new URL file")
        assert url_file.read_text() == url, "same port, same URL"
        _wait_for(lambda: client.get("/ready").status_code == 200, 30, "/ready to answer 200 again")
        old = client.get(f"/v1/status/{before}", headers={"X-API-Key": key})
        assert old.status_code == 200, old.text
        assert old.json()["status"] == "COMPLETE"

        after = _finished(client, key, _submit(client, key), timeout=90)
        assert after["status"] == "COMPLETE", after
        assert replacement.is_running()
        assert up["log"].read_text().count("broker.recovered_after_outage") <= 1

    def test_finished_task_survives_a_redis_wipe_and_a_restart(self, up):
        """FLUSHALL of every Redis database, then a restart of `maie up`: the result is all there."""
        data_dir: Path = up["data_dir"]
        key = (data_dir / "dev-api-key").read_text().strip()
        headers = {"X-API-Key": key}
        task_id = _submit(up["client"], key)
        assert _finished(up["client"], key, task_id)["status"] == "COMPLETE"
        result = up["client"].get(f"/v1/tasks/{task_id}/results/1", headers=headers).json()

        live = redis.Redis.from_url((data_dir / "redis" / "url").read_text())
        assert live.info("keyspace"), "Redis held something to wipe (queues, heartbeats)"
        live.flushall()
        live.close()
        wiped = up["client"].get(f"/v1/status/{task_id}", headers=headers)
        assert wiped.status_code == 200, wiped.text
        assert wiped.json()["status"] == "COMPLETE"

        up["process"].send_signal(signal.SIGTERM)
        assert up["process"].wait(timeout=90) == 0
        up["client"].close()
        up["process"], up["client"] = _launch(up["env"], up["port"], up["log"])
        after = up["client"].get(f"/v1/tasks/{task_id}/results/1", headers=headers)
        assert after.status_code == 200, after.text
        assert after.json() == result, "the same result version, byte for byte in content"
        listed = up["client"].get("/v1/tasks", headers=headers).json()
        assert task_id in [t["task_id"] for t in listed["tasks"]]
        assert _finished(up["client"], key, _submit(up["client"], key))["status"] == "COMPLETE"

    def test_killed_postgres_mid_task_is_restarted_and_the_task_completes(self, up):
        """SIGKILL of PostgreSQL with a task in flight: 503 with Retry-After meanwhile, never 500.

        Requests wait up to MAIE_DATABASE_POOL_TIMEOUT_S for the server, so a restart quicker
        than that is invisible to clients; a 1 s wait and a second kill right after the first
        restart (`maie up` then waits 1 s before the next) make the outage outlast it.
        """
        up["process"].send_signal(signal.SIGTERM)
        assert up["process"].wait(timeout=90) == 0
        up["client"].close()
        up["env"] = {**up["env"], "MAIE_DATABASE_POOL_TIMEOUT_S": "1"}
        up["process"], up["client"] = _launch(up["env"], up["port"], up["log"])
        data_dir: Path = up["data_dir"]
        client: httpx.Client = up["client"]
        key = (data_dir / "dev-api-key").read_text().strip()
        headers = {"X-API-Key": key}
        done = _submit(client, key)
        assert _finished(client, key, done)["status"] == "COMPLETE"
        pid = up["process"].pid
        task_id = _submit(client, key)
        answers: list[httpx.Response] = []

        def poll():
            # /ready first: it names what is down, and the reads after it may each wait for the
            # pool's timeout while PostgreSQL is away.
            for url in ("/ready", f"/v1/status/{task_id}", f"/v1/status/{done}", "/v1/tasks"):
                with contextlib.suppress(httpx.TransportError):
                    answers.append(client.get(url, headers=headers))

        first = _children(pid)["postgres"]
        first.send_signal(signal.SIGKILL)

        def restarted():
            poll()
            current = _children(pid).get("postgres")
            return current is not None and current.pid != first.pid and current

        second = _wait_for(restarted, 60, "a new PostgreSQL")
        second.send_signal(signal.SIGKILL)

        def back():
            poll()
            current = _children(pid).get("postgres")
            return (
                current is not None and current.pid not in {first.pid, second.pid} and answers[-1].is_success
            )

        _wait_for(back, 90, "PostgreSQL to be restarted and answer")
        odd = [(r.status_code, r.text) for r in answers if r.status_code not in {200, 503}]
        assert not odd, "only answers or 503 while PostgreSQL is away"
        unavailable = [r for r in answers if r.status_code == 503]
        assert unavailable, "the outage was seen"
        assert all(r.headers.get("Retry-After") for r in unavailable)
        assert any("PostgreSQL" in r.text for r in unavailable)
        status = _finished(client, key, task_id, timeout=180)
        assert status["status"] == "COMPLETE", status
        assert client.get(f"/v1/status/{done}", headers=headers).json()["status"] == "COMPLETE"

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

    def test_second_up_on_the_same_data_refuses_and_leaves_the_first_alone(self, up):
        url_file = up["data_dir"] / "redis" / "url"
        url = url_file.read_text()
        second = subprocess.run(
            [sys.executable, "-m", "maie", "up", "--port", str(free_port())],
            env=up["env"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode != 0
        assert "already runs" in second.stdout + second.stderr
        assert url_file.read_text() == url, "the running server's URL file is not removed"
        assert up["client"].get("/ready").status_code == 200

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
    def test_clean_stop(self, up, sig):
        process = up["process"]
        children = list(_children(process.pid).values())
        assert set(_children(process.pid)) == {"api", "stream", "worker", "redis", "postgres"}
        process.send_signal(sig)
        assert process.wait(timeout=60) == 0
        for child in children:
            assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        assert not (up["data_dir"] / "redis" / "url").exists(), "the URL file of a stopped server is removed"
        assert not (up["data_dir"] / "postgres" / "url").exists()
        log = up["log"].read_text()
        # Workers first, then the API; the servers last, once nothing uses them.
        order = [log.index(f"child={name}") for name in ("worker-1", "api")]
        assert log.index("redis.stopped") > log.rindex("child.started")
        assert log.index("postgres.stopped") > max(order)

    def test_children_do_not_outlive_a_killed_supervisor(self, up):
        """SIGKILL of `maie up` itself: Redis, PostgreSQL, API, stream and workers are told to stop."""
        process = up["process"]
        children = list(_children(process.pid).values())
        assert len(children) == 5
        process.send_signal(signal.SIGKILL)
        process.wait()
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [c.cmdline() for c in alive]
        assert len(gone) == 5


#: Seconds a stopping `maie up` may take: its workers' stop timeout (set to 5 s below) plus margins.
STOP_DEADLINE_S = 40.0


def _start_up(env, tmp_path, name: str, *, module: str = "maie") -> tuple[subprocess.Popen[bytes], Path]:
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "up", "--port", str(free_port())],
            env={**env, "MAIE_WORKER_STOP_TIMEOUT_S": "5"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, log_path


def _assert_stopped_cleanly(process, descendants, data_dir, log_path) -> None:
    try:
        code = process.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        _kill_tree(process)
        pytest.fail(f"`maie up` still running {STOP_DEADLINE_S} s after SIGTERM:\n{log_path.read_text()}")
    assert code == 0, log_path.read_text()
    _, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, [c.cmdline() for c in alive]
    assert not (data_dir / "redis" / "url").exists(), "redis/url is removed with its server"
    assert not (data_dir / "postgres" / "url").exists(), "postgres/url is removed with its server"


@pytest.mark.slow
class TestStop:
    """SIGTERM always stops `maie up`, whenever it comes and however often."""

    def test_quick_start_stop_cycles(self, service_env, tmp_path):
        """Twenty starts, each stopped at a different moment of its start-up, some with two SIGTERMs.

        The children are still importing and starting (the machine is busy with them) when most
        of the signals come.
        """
        data_dir = tmp_path / "data"
        env = _up_env(service_env, data_dir)
        rng = random.Random(10)  # noqa: S311 - moments of the faults, not secrets
        for cycle in range(20):
            process, log_path = _start_up(env, tmp_path, f"cycle-{cycle}")
            # Stop only once `maie up` owns its signals (it writes redis/url after installing them).
            _wait_for(lambda p=process: (data_dir / "redis" / "url").exists() or p.poll() is not None, 30)
            assert process.poll() is None, log_path.read_text()
            time.sleep(rng.uniform(0.0, 3.0))  # the moment of the fault, not a wait for a state
            descendants = psutil.Process(process.pid).children(recursive=True)
            process.send_signal(signal.SIGTERM)
            if cycle % 3 == 0:
                time.sleep(rng.uniform(0.0, 0.5))
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)  # an impatient operator
            _assert_stopped_cleanly(process, descendants, data_dir, log_path)

    def test_sigterm_inside_a_lock_of_the_main_loop(self, service_env, tmp_path):
        """A SIGTERM that lands while the main thread holds a threading primitive's lock still stops it.

        The fault injector (tests/fixtures/signal_race.py) makes the signal land there every time.
        A handler that took that lock (``threading.Event.set()``) would hang for ever.
        """
        data_dir = tmp_path / "data"
        process, log_path = _start_up(
            _up_env(service_env, data_dir), tmp_path, "race", module="tests.fixtures.signal_race"
        )
        _wait_for(lambda: "child.started" in log_path.read_text() or process.poll() is not None, 60)
        assert process.poll() is None, log_path.read_text()
        descendants = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGUSR1)  # arms the injector
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=3)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the main loop took no such lock: a plain stop
        _assert_stopped_cleanly(process, descendants, data_dir, log_path)


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
