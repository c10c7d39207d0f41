"""Batches of waiting tasks on a real ASR worker: each task transcribed once, none lost to a crash.

Tasks are made to wait for ASR the way an archive upload does: a CPU-only worker preprocesses
them while no ASR worker runs; then an ASR worker (``--queues maie.gpu``) starts and finds them
all waiting.
"""

from __future__ import annotations

import json
import signal
import time
from typing import TYPE_CHECKING

import pytest

from maie.up.redis import EmbeddedRedis
from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import fresh_database
from tests.fixtures.services import HEADERS_A, Process

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow


@pytest.fixture
def batch_env(service_env, tmp_path) -> Iterator[dict[str, str]]:
    """A private Redis and data folder; ASR batches of up to 4 tasks; dead workers noticed in 5 s."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield {
        **service_env,
        "MAIE_REDIS_URL": server.url,
        "MAIE_DATABASE_URL": fresh_database(service_env["MAIE_DATABASE_URL"]),
        "MAIE_DATA_DIR": str(tmp_path / "data"),
        "MAIE_ASR_BATCH_MAX_TASKS": "4",
        "MAIE_WORKER_HEARTBEAT_TIMEOUT_S": "5",
        "MAIE_WORKER_REQUEUE_CHECK_PER_MILLION": "500000",
    }
    server.stop()


@pytest.fixture
def workers(tmp_path) -> Iterator[list[Process]]:
    """Workers started by a test (with queue options); all stopped at the end."""
    started: list[Process] = []
    yield started
    for process in started:
        process.stop(timeout=10)


def start_worker(
    workers: list[Process], env: dict[str, str], queue: str, log_dir: Path, **extra: str
) -> Process:
    process = Process(["worker", "--queues", queue], {**env, **extra}, log_dir / f"worker-{len(workers)}.log")
    workers.append(process)
    return process


def events(process: Process, name: str) -> list[dict]:
    """The JSON log lines of ``process`` whose event is ``name``."""
    found = []
    for line in process.log().splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            entry = json.loads(line)
            if entry.get("event") == name:
                found.append(entry)
    return found


def wait_preprocessed(api, task_ids: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    pending = set(task_ids)
    while pending:
        for task_id in list(pending):
            body = api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).json()
            if body["stages"][0].get("status") == "done":
                pending.discard(task_id)
        assert time.monotonic() < deadline, f"not preprocessed: {pending}"
        time.sleep(0.1)


def wait_for_event(process: Process, name: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while not (found := events(process, name)):
        assert process.popen.poll() is None, process.log()
        assert time.monotonic() < deadline, f"no {name} in:\n{process.log()[-3000:]}"
        time.sleep(0.05)
    return found[0]


class TestBatchedAsr:
    """One ASR message transcribes the waiting tasks; the others' messages find their transcripts."""

    def test_waiting_tasks_are_transcribed_together_once(self, batch_env, start_process, workers, tmp_path):
        api = start_process("api", batch_env)
        start_worker(workers, batch_env, "maie.cpu", tmp_path)
        task_ids = [api.submit(shared_audio("jfk_16k.wav")).json()["task_id"] for _ in range(4)]
        wait_preprocessed(api, task_ids)

        asr = start_worker(workers, batch_env, "maie.gpu", tmp_path, MAIE_WORKER_THREADS="1")
        statuses = [api.wait(task_id) for task_id in task_ids]

        assert [s["status"] for s in statuses] == ["COMPLETE"] * 4, statuses
        for status in statuses:
            transcribe = next(s for s in status["stages"] if s["name"] == "transcribe")
            assert transcribe["attempts"] == 1
            assert status["versions"]["asr_backend"]["name"] == "whisper"
        (batch,) = events(asr, "asr.batch_claimed")
        assert sorted(batch["tasks"]) == sorted(task_ids)
        assert len(events(asr, "asr.finished")) == 4, "each task transcribed exactly once"
        assert len(events(asr, "stage.reused_artifact")) == 3, "the other messages reused the batch's work"
        api.stop()


class TestKilledMidBatch:
    """The ASR worker dies inside a batch: another one finishes every task, none twice."""

    def test_sigkill_mid_batch_then_new_worker_completes_all(
        self, batch_env, start_process, workers, tmp_path
    ):
        slow = {  # slow decoding (beam 5, temperature fallback, no token cap) to be killed inside it
            "MAIE_WHISPER_BEAM_SIZE": "5",
            "MAIE_WHISPER_TEMPERATURE": "0.0,0.2,0.4,0.6,0.8,1.0",
            "MAIE_WHISPER_MAX_NEW_TOKENS": "",
            "MAIE_WHISPER_VAD_FILTER": "false",
        }
        env = {**batch_env, **slow}
        api = start_process("api", env)
        start_worker(workers, env, "maie.cpu", tmp_path)
        task_ids = [api.submit(shared_audio("jfk_16k.wav")).json()["task_id"] for _ in range(3)]
        wait_preprocessed(api, task_ids)

        first = start_worker(workers, env, "maie.gpu", tmp_path, MAIE_WORKER_THREADS="1")
        wait_for_event(first, "asr.batch_claimed")
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait()
        # At the fast decoding of batch_env: only the redelivery of the batch is under test.
        second = start_worker(workers, batch_env, "maie.gpu", tmp_path)
        statuses = [api.wait(task_id, timeout=180) for task_id in task_ids]

        assert [s["status"] for s in statuses] == ["COMPLETE"] * 3, statuses
        assert len(events(first, "asr.stored")) < 3, "premise: the first worker died inside its batch"
        stored = len(events(first, "asr.stored")) + len(events(second, "asr.stored"))
        assert stored == 3, "every transcript stored exactly once across both workers"
        assert all(s["result_version"] == 1 for s in statuses)
        api.stop()
