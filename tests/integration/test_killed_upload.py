"""An API process SIGKILLed mid-upload: its part is swept and the same Idempotency-Key works again.

Real processes throughout: a private Redis, ``maie api`` killed while it copies a large upload into
``audio/<id>/raw.part``, a second ``maie api`` on the same data and Redis, and the Python client
retrying with the same key (it is told 409 while the dead process's mark lives, and backs off).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import uuid
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from maie.client import MaieClient
from maie.schemas import TaskStatus
from tests.fixtures.polling import wait_for
from tests.fixtures.services import HEADERS_A, KEY_A

if TYPE_CHECKING:
    from collections.abc import Callable

#: Minutes of silence in the upload: large enough that copying it takes a moment to catch.
MINUTES = 80


@pytest.fixture
def isolated(service_env, tmp_path):
    """A private Redis and data folder, with no worker: the retried task stays queued."""
    from maie.up.redis import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    env = {
        **service_env,
        "MAIE_REDIS_URL": server.url,
        "MAIE_DATA_DIR": str(tmp_path / "data"),
        "MAIE_MAX_FILE_SIZE_MB": "1024",
        "MAIE_UPLOAD_SWEEP_INTERVAL_S": "1",
    }
    yield env
    server.stop()


@pytest.fixture
def long_wav(tmp_path) -> Path:
    """A 16 kHz mono WAV of silence, about 150 MB."""
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        second = b"\0\0" * 16000
        for _ in range(MINUTES):
            out.writeframes(second * 60)
    return path


def _parts(audio: Path) -> list[Path]:
    return list(audio.glob("*/raw.part")) if audio.is_dir() else []


def _kill_mid_request(api, path: str, long_wav: Path, staged: Callable[[], list[Path]], **form) -> Path:
    """Post ``long_wav`` to ``api`` from a thread, SIGKILL ``api`` as soon as ``staged`` finds
    where it is being copied, and return that one place."""

    def send() -> None:
        # The process is killed: no answer comes.
        with (
            httpx.Client(base_url=api.url, timeout=120) as client,
            long_wav.open("rb") as fh,
            contextlib.suppress(httpx.TransportError),
        ):
            files = [("file", (long_wav.name, fh))]
            client.post(path, files=files, data={"features": "raw_transcript"}, **form)

    def copying() -> list[Path]:
        assert sender.is_alive(), "the request finished before it could be killed"
        return staged()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    # A short interval: the copy is caught while it runs.
    wait_for(copying, timeout_s=120, failure=f"{path} never staged the upload", interval_s=0.005)
    api.stop(signal.SIGKILL)
    sender.join(timeout=30)
    (orphan,) = staged()
    return orphan


def test_killed_mid_upload_is_swept_and_the_key_retried(isolated, start_process, long_wav):
    audio = Path(isolated["MAIE_DATA_DIR"]) / "audio"
    key = str(uuid.uuid4())
    first = start_process("api", isolated)
    headers = {**HEADERS_A, "Idempotency-Key": key}
    orphan = _kill_mid_request(first, "/v1/process", long_wav, lambda: _parts(audio), headers=headers)
    assert (orphan.parent / "raw.part.owner").is_file(), "the folder names the process copying it"

    second = start_process("api", isolated)
    with MaieClient(second.url, KEY_A) as client:
        accepted = client.submit(long_wav, idempotency_key=key, features=["raw_transcript"])
    assert accepted.status == TaskStatus.PENDING
    assert accepted.task_id != orphan.parent.name, "a new task: the killed request made none"
    log = second.log()
    assert "idempotency.orphan_claim_taken_over" in log, "the client was told 409 first and retried"

    wait_for(
        lambda: not orphan.parent.exists(),
        timeout_s=60,
        failure=lambda: f"the orphaned part was not swept:\n{second.log()}",
        interval_s=0.2,
    )
    assert "upload.orphan_removed" in second.log()
    assert (audio / accepted.task_id).is_dir(), "the live task's folder is kept"
    assert not (audio / accepted.task_id / "raw.part.owner").exists(), "a stored task is no intake's"
    again = second.client.post(
        "/v1/process",
        headers={**HEADERS_A, "Idempotency-Key": key},
        files={"file": (long_wav.name, long_wav.read_bytes())},
        data={"features": "raw_transcript"},
    )
    assert again.json()["task_id"] == accepted.task_id, "the key now names the new task"


def test_killed_mid_batch_is_swept(isolated, start_process, long_wav):
    """A batch is staged in ``batches/<id>/``: an API killed then leaves it, and the next sweeps it."""
    batches = Path(isolated["MAIE_DATA_DIR"]) / "batches"
    first = start_process("api", isolated)

    def staged() -> list[Path]:
        return [p for p in batches.iterdir() if any(p.glob("part-*"))] if batches.is_dir() else []

    orphan = _kill_mid_request(first, "/v1/batches", long_wav, staged, headers=HEADERS_A)
    assert (orphan / ".owner").is_file(), "the staging folder names the process taking it in"

    second = start_process("api", isolated)
    wait_for(
        lambda: not orphan.exists(),
        timeout_s=60,
        failure=lambda: f"the staging folder was not swept:\n{second.log()}",
        interval_s=0.2,
    )
    assert "batch.orphan_removed" in second.log()
    audio = Path(isolated["MAIE_DATA_DIR"]) / "audio"
    assert not (audio.is_dir() and any(audio.iterdir())), "no task folder of the killed batch is left"
