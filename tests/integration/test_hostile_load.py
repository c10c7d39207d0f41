"""Load and outages over real processes: 50 uploads at once, and Redis restarted under load.

Accepted tasks are the service's promise: each one ends COMPLETE, or FAILED with a reason; none
stays unfinished for ever and none disappears.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import pytest
import redis

from maie.up.redis import EmbeddedRedis
from tests.fixtures import bad_media
from tests.fixtures.paths import shared_audio
from tests.fixtures.postgres import query
from tests.fixtures.services import HEADERS_A

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: Short real recordings, so fifty tasks finish in seconds with the tiny model.
CLIPS = ("lhotse/LJ002-0020.wav", "lhotse/LJ002-0035.wav", "lhotse/common_voice_en_651325.mp3")


def unfinished(database_url: str) -> int:
    """Tasks the database holds as not finished."""
    return query(database_url, "SELECT count(*) FROM tasks WHERE status NOT IN ('COMPLETE', 'FAILED')")[0][0]


@pytest.fixture
def stack(service_env, start_process, private_database, tmp_path) -> Iterator[dict[str, object]]:
    """A private Redis, database and data folder; ``start`` runs the API and workers a test needs.

    They are stopped when the test ends, before Redis, so none is left polling a dead server.
    """
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    env = {
        **service_env,
        "MAIE_REDIS_URL": server.url,
        "MAIE_DATABASE_URL": private_database,
        "MAIE_DATA_DIR": str(tmp_path / "data"),
        # Messages a Redis outage strands come back once their worker id's heartbeat is this old:
        # 15 s instead of 60 s (checked on most broker commands) keeps the outage tests short, yet
        # stays longer than the outage plus Dramatiq's 3 s consumer restart, so a live worker is
        # never taken for dead and only the worker's own recovery can hand the messages back.
        "MAIE_WORKER_HEARTBEAT_TIMEOUT_S": "15",
        "MAIE_WORKER_REQUEUE_CHECK_PER_MILLION": "500000",
    }
    started = []

    def start(kind, process_env):
        started.append(start_process(kind, process_env))
        return started[-1]

    yield {
        "server": server,
        "env": env,
        "audio": tmp_path / "data" / "audio",
        "start": start,
    }
    for process in started:
        process.stop(timeout=10)
    server.stop()


def _submit(url: str, path: Path) -> httpx.Response:
    with path.open("rb") as fh, httpx.Client(base_url=url, timeout=120) as client:
        return client.post(
            "/v1/process",
            headers=HEADERS_A,
            files={"file": (path.name, fh)},
            data={"features": "raw_transcript"},
        )


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _settle(api, task_ids, timeout: float = 180) -> dict[str, dict[str, object]]:
    """Wait until every task is finished; return their final status bodies."""
    deadline = time.monotonic() + timeout
    finished: dict[str, dict[str, object]] = {}
    while len(finished) < len(task_ids):
        for task_id in set(task_ids) - set(finished):
            response = api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A)
            assert response.status_code == 200, f"task {task_id} vanished: {response.text}"
            body = response.json()
            if body["status"] in {"COMPLETE", "FAILED"}:
                finished[task_id] = body
        if time.monotonic() > deadline:
            stuck = {
                t: api.client.get(f"/v1/status/{t}", headers=HEADERS_A).json()["status"] for t in task_ids
            }
            raise AssertionError(f"unfinished after {timeout} s: {stuck}")
        time.sleep(0.25)
    return finished


@pytest.mark.slow
class TestConcurrentUploads:
    """Fifty uploads at once, some of them hostile, while two workers run."""

    def test_every_accepted_task_finishes(self, stack, tmp_path):
        env = {**stack["env"], "MAIE_MAX_QUEUE_DEPTH": "40"}
        api = stack["start"]("api", env)
        for _ in range(2):
            stack["start"]("worker", env)
        hostile = [
            bad_media.write_text(tmp_path),
            bad_media.write_truncated(tmp_path, shared_audio("jfk.flac"), fraction=0.3),
            bad_media.write_damaged(tmp_path, shared_audio("hotwords.mp3"), seed=2),
            bad_media.write_video_mp4(tmp_path),
            bad_media.write_bit_flipped(tmp_path, shared_audio("jfk_16k.wav")),
        ]
        good = [shared_audio(c) for c in CLIPS]
        uploads = [*hostile, *itertools.islice(itertools.cycle(good), 50 - len(hostile))]
        with ThreadPoolExecutor(max_workers=len(uploads)) as pool:
            responses = list(pool.map(lambda p: _submit(api.url, p), uploads))

        codes = [r.status_code for r in responses]
        assert set(codes) <= {202, 415, 422, 429}, codes
        assert all(r.json()["status_code"] == r.status_code for r in responses if r.status_code != 202)
        assert all("Retry-After" in r.headers for r in responses if r.status_code == 429)
        accepted = [r.json()["task_id"] for r in responses if r.status_code == 202]
        assert len(accepted) >= 30, codes  # the queue holds 40; hostile ones are refused or fail
        assert len(set(accepted)) == len(accepted)

        finished = _settle(api, accepted)
        for body in finished.values():
            if body["status"] == "FAILED":
                assert body["error"]
                assert body["error_code"] not in {None, "internal_error"}, body
        assert sum(b["status"] == "COMPLETE" for b in finished.values()) >= len(accepted) - 3

        assert unfinished(stack["env"]["MAIE_DATABASE_URL"]) == 0, "no task counts as unfinished"
        audio: Path = stack["audio"]
        assert not any(audio.iterdir()), "finished tasks and refused uploads leave no audio"
        assert api.client.get("/health").json()["queue_depth"] == 0


@pytest.mark.slow
class TestRedisRestart:
    """Redis stopped (its AOF flushed) and started again while tasks are in every stage."""

    def test_accepted_tasks_still_complete(self, stack):
        server: EmbeddedRedis = stack["server"]
        api = stack["start"]("api", stack["env"])
        stack["start"]("worker", stack["env"])
        clips = [shared_audio(c) for c in itertools.islice(itertools.cycle(CLIPS), 16)]
        accepted = []
        for clip in clips:
            response = api.submit(clip)
            assert response.status_code == 202, response.text
            accepted.append(response.json()["task_id"])

        def statuses() -> list[str]:
            return [api.client.get(f"/v1/status/{t}", headers=HEADERS_A).json()["status"] for t in accepted]

        deadline = time.monotonic() + 60
        while "COMPLETE" not in statuses():  # under way: some done, others queued or running
            assert time.monotonic() < deadline, statuses()
            time.sleep(0.1)
        before = statuses()
        server.restart()
        assert api.client.get("/ready").status_code == 200

        finished = _settle(api, accepted)
        final = {t: b["status"] for t, b in finished.items()}
        assert set(final.values()) == {"COMPLETE"}, (before, final)
        assert unfinished(stack["env"]["MAIE_DATABASE_URL"]) == 0

    def test_outage_while_a_stage_runs(self, stack):
        """Redis goes away during ASR and stays away until the stage has failed to store its result."""
        server: EmbeddedRedis = stack["server"]
        slow = {  # beam search with fallback and no token cap: seconds of ASR to stop Redis in
            **stack["env"],
            "MAIE_WHISPER_BEAM_SIZE": "5",
            "MAIE_WHISPER_TEMPERATURE": "0.0,0.2,0.4,0.6,0.8,1.0",
            "MAIE_WHISPER_MAX_NEW_TOKENS": "",
            "MAIE_WHISPER_VAD_FILTER": "false",
        }
        api = stack["start"]("api", slow)
        worker = stack["start"]("worker", slow)
        task_id = api.submit(shared_audio("pyannote/ami_mixture_4spk.wav")).json()["task_id"]
        deadline = time.monotonic() + 60
        while api.client.get(f"/v1/status/{task_id}", headers=HEADERS_A).json()["status"] != "PROCESSING_ASR":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.stop()
        deadline = time.monotonic() + 120
        # The ASR ends while Redis is down: storing its result fails, and the stage says so.
        while not any(
            line.get("event") == "stage.error" and line.get("task_id") == task_id
            for line in _json_lines(worker.log())
        ):
            assert time.monotonic() < deadline, "the stage never finished while Redis was down"
            time.sleep(0.2)
        # Redis stays down until the worker has given up on redis-py's own reconnection attempts
        # and holds the failed message, waiting for Redis to retry it.
        while not any(line.get("event") == "worker.redis_unreachable" for line in _json_lines(worker.log())):
            assert time.monotonic() < deadline, "the worker never noticed that Redis was down"
            time.sleep(0.2)
        server.start()
        status = _settle(api, [task_id])[task_id]
        assert status["status"] == "COMPLETE", status
        transcribe = next(s for s in status["stages"] if s["name"] == "transcribe")
        # The attempt that could not store its result, its retry, and possibly a redelivery of a
        # message the outage stranded (handed back after the heartbeat timeout): idempotent runs.
        assert transcribe["attempts"] >= 2
        assert status["result_version"] == 1, "one result, however often the stage ran"

    def test_recovery_is_logged_once_and_only_when_true(self, stack):
        """While Redis is down the worker never claims it recovered; once it is back, it says so once."""
        server: EmbeddedRedis = stack["server"]
        api = stack["start"]("api", stack["env"])
        worker = stack["start"]("worker", stack["env"])

        def events(name: str) -> int:
            return sum(1 for line in _json_lines(worker.log()) if str(line.get("event", "")).startswith(name))

        deadline = time.monotonic() + 60
        while not events("worker.started"):
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.1)
        server.stop()
        # Every consumer (two queues and their delay queues) fails and restarts a few times.
        deadline = time.monotonic() + 60
        while events("Consumer encountered a connection error") < 12:  # 3 rounds of 4 consumers
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.2)
        assert events("broker.recovered_after_outage") == 0, "Redis is still down"
        server.start()
        status = _settle(api, [api.submit(shared_audio("lhotse/LJ002-0020.wav")).json()["task_id"]])
        assert next(iter(status.values()))["status"] == "COMPLETE"
        assert events("broker.recovered_after_outage") == 1

    def test_restart_while_a_retry_waits(self, stack):
        """A retry waiting out its back-off in the worker's memory survives a Redis restart.

        Dramatiq keeps such a message in memory and forgets it when its consumer loses Redis,
        leaving it in the acks set of a worker that is still alive; the worker's new id after the
        outage lets broker maintenance hand it back.
        """
        server: EmbeddedRedis = stack["server"]
        env = {**stack["env"], "MAIE_RETRY_MIN_BACKOFF_MS": "20000", "MAIE_RETRY_MAX_BACKOFF_MS": "20000"}
        api = stack["start"]("api", env)
        task_id = api.submit(shared_audio("lhotse/LJ002-0020.wav")).json()["task_id"]
        blocker = stack["audio"] / task_id / "preprocessed.wav"  # the first attempt fails on it
        blocker.mkdir()
        (blocker / "keep").write_text("x")
        worker = stack["start"]("worker", env)
        deadline = time.monotonic() + 60
        while not any(
            line.get("event") == "stage.error" and line.get("task_id") == task_id
            for line in _json_lines(worker.log())
        ):
            assert time.monotonic() < deadline, "the first attempt never failed"
            time.sleep(0.1)
        # The retry (due in 20 s) is fetched from Redis into the worker's memory: the message sits
        # in the acknowledgement set of the worker's delay-queue consumer.
        from maie.store.keys import BROKER_NAMESPACE as NAMESPACE

        broker = redis.Redis.from_url(server.url)
        while not any(broker.scard(key) for key in broker.scan_iter(match=f"{NAMESPACE}:__acks__.*.DQ")):
            assert time.monotonic() < deadline, "the retry never reached the worker's delay queue"
            time.sleep(0.1)
        broker.close()
        shutil.rmtree(blocker)
        server.restart()
        status = _settle(api, [task_id], timeout=120)[task_id]
        assert status["status"] == "COMPLETE", status
        assert next(s for s in status["stages"] if s["name"] == "preprocess")["attempts"] >= 2
        assert status["result_version"] == 1


@pytest.mark.slow
class TestRetriesExhausted:
    """A stage that keeps failing with a transient error fails its task once retries run out."""

    def test_task_fails_instead_of_hanging(self, stack):
        env = {
            **stack["env"],
            "MAIE_MAX_RETRIES": "1",
            "MAIE_RETRY_MIN_BACKOFF_MS": "100",
            "MAIE_RETRY_MAX_BACKOFF_MS": "200",
        }
        api = stack["start"]("api", env)
        task_id = api.submit(shared_audio("lhotse/LJ002-0020.wav")).json()["task_id"]
        # A folder where the WAV must go: every attempt fails with IsADirectoryError, an error MAIE
        # does not know as permanent, so Dramatiq retries it (even as root, unlike a permission).
        blocker = stack["audio"] / task_id / "preprocessed.wav"
        blocker.mkdir()
        (blocker / "keep").write_text("x")
        stack["start"]("worker", env)
        status = _settle(api, [task_id], timeout=60)[task_id]
        assert status["status"] == "FAILED", status
        assert status["failed_stage"] == "preprocess"
        assert status["error_code"] == "internal_error"
        assert "IsADirectoryError" in status["error"]
        preprocess = next(s for s in status["stages"] if s["name"] == "preprocess")
        assert preprocess["attempts"] == 2
