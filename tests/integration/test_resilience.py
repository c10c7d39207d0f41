"""Workers die; tasks do not. A worker killed with SIGKILL mid-task: another one finishes the task."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import query
from tests.fixtures.services import HEADERS_A


@pytest.fixture
def isolated_env(service_env, private_database, tmp_path):
    """A private Redis, database and data folder, so only this test's workers see its messages."""
    from maie.up.redis import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    env = {
        **service_env,
        "MAIE_REDIS_URL": server.url,
        "MAIE_DATABASE_URL": private_database,
        "MAIE_DATA_DIR": str(tmp_path / "data"),
        # Slow decoding (beam 5, temperature fallback, no token cap) keeps the task in ASR long
        # enough to kill its worker there.
        "MAIE_WHISPER_BEAM_SIZE": "5",
        "MAIE_WHISPER_TEMPERATURE": "0.0,0.2,0.4,0.6,0.8,1.0",
        "MAIE_WHISPER_MAX_NEW_TOKENS": "",
        "MAIE_WHISPER_VAD_FILTER": "false",
        # Notice a dead worker after 5 s instead of 60 s, checking on most broker commands.
        "MAIE_WORKER_HEARTBEAT_TIMEOUT_S": "5",
        "MAIE_WORKER_REQUEUE_CHECK_PER_MILLION": "500000",
    }
    yield server, env
    server.stop()


def _wait_status(api, task_id, wanted, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).json()
        if body["status"] == wanted:
            return body
        assert body["status"] not in {"COMPLETE", "FAILED"}, body
        time.sleep(0.05)
    raise AssertionError(f"task never reached {wanted}")


def _wait_logged(process, event, task_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not any(
        line.get("event") == event and line.get("task_id") == task_id
        for line in (json.loads(text) for text in process.log().splitlines() if text.startswith("{"))
    ):
        assert time.monotonic() < deadline, f"{event} of {task_id} never logged:\n{process.log()}"
        time.sleep(0.05)


@pytest.mark.slow
class TestKilledWorker:
    """Redelivery after SIGKILL."""

    def test_sigkill_mid_asr_then_new_worker_completes(self, isolated_env, service_env, start_process):
        _, env = isolated_env
        api = start_process("api", env)
        first = start_process("worker", env)
        task_id = api.submit(shared_audio("pyannote/ami_mixture_4spk.wav")).json()["task_id"]

        _wait_status(api, task_id, "PROCESSING_ASR")  # the stage marked itself running
        _wait_logged(first, "asr.language_detected", task_id)  # and decoding is under way
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait()
        assert api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).json()["status"] == "PROCESSING_ASR"

        # The second worker decodes at the session's fast settings: only the redelivery is under test.
        fast = ("MAIE_WHISPER_BEAM_SIZE", "MAIE_WHISPER_TEMPERATURE", "MAIE_WHISPER_MAX_NEW_TOKENS")
        second = start_process("worker", {**env, **{key: service_env[key] for key in fast}})
        status = api.wait(task_id, timeout=180)
        assert status["status"] == "COMPLETE", status
        transcribe = next(s for s in status["stages"] if s["name"] == "transcribe")
        assert transcribe["attempts"] == 2, "the killed attempt and the redelivered one"
        preprocess = next(s for s in status["stages"] if s["name"] == "preprocess")
        assert preprocess["attempts"] == 1, "preprocessing was done once and not repeated"
        versions = query(
            env["MAIE_DATABASE_URL"], "SELECT version FROM result_versions WHERE task_id = %s", task_id
        )
        assert versions == [(1,)], "one result, however often the stage ran"
        second.stop()  # before its Redis, which the fixture stops: it would wait on it until the session ends
        api.stop()
