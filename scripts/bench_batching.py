"""Batched against one-by-one ASR, measured in the same run: through the service and per backend.

Used by scripts/bench.py (``--batching``); it prints what these functions return.

1. Service: ``tasks`` copies of a recording are preprocessed by a CPU-only worker while no ASR
   worker runs (as when an archive is uploaded), then one ASR worker starts, with
   ``MAIE_ASR_BATCH_MAX_TASKS=1`` and then ``=tasks``. The figure is the ASR window: from the first
   transcribe stage's start to the last one's end, from the task records (worker start-up excluded,
   the model load included in both).
2. Backends, in process, on one loaded model: ``process()`` per recording against
   ``process_batch()`` over all of them (ChunkFormer's ``batch_decode`` when timestamps are off;
   Whisper's loops, so its ratio shows what batching costs), and Whisper's
   ``BatchedInferencePipeline`` against sequential decoding of the same file.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from maie.config import Settings
from maie.pipeline.asr import AsrInput
from maie.pipeline.asr.registry import REGISTRY
from maie.pipeline.preprocess import PreprocessInput, PreprocessOptions, Preprocessor
from tests.fixtures.private_stores import private_stores
from tests.fixtures.services import Api, Process

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = ["backend_batching", "service_batching", "whisper_pipeline_batching"]


def _wait(
    api: Api, headers: dict[str, str], task_ids: list[str], done: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 1800
    while True:
        bodies = [api.client.get(f"/v1/status/{t}", headers=headers).json() for t in task_ids]
        if all(done(b) for b in bodies):
            return bodies
        failed = [b for b in bodies if b["status"] == "FAILED"]
        if failed or time.monotonic() > deadline:
            msg = f"tasks did not finish: {failed or bodies}"
            raise RuntimeError(msg)
        time.sleep(0.05)


def _asr_window(bodies: list[dict[str, Any]]) -> float:
    stages = [next(s for s in b["stages"] if s["name"] == "transcribe") for b in bodies]
    start = min(datetime.fromisoformat(s["started_at"]) for s in stages)
    end = max(datetime.fromisoformat(s["finished_at"]) for s in stages)
    return (end - start).total_seconds()


def service_batching(
    audio: Path, tasks: int, base_env: dict[str, str], work: Path, *, key: str, residency: str, runs: int
) -> dict[int, list[float]]:
    """ASR windows in seconds for ``tasks`` waiting tasks, keyed by MAIE_ASR_BATCH_MAX_TASKS (1, tasks).

    The two settings alternate run by run, so a machine that slows down mid-way hits both alike.
    """
    windows: dict[int, list[float]] = {1: [], tasks: []}
    for run in range(runs):
        for max_tasks in (1, tasks):
            folder = work / f"service-batch-{max_tasks}-{run}"
            windows[max_tasks].append(
                _service_window(audio, tasks, max_tasks, base_env, folder, key=key, residency=residency)
            )
    return windows


def _service_window(
    audio: Path, tasks: int, max_tasks: int, base_env: dict[str, str], run: Path, *, key: str, residency: str
) -> float:
    headers = {"X-API-Key": key}
    with private_stores(run / "stores") as stores:
        env = {
            **base_env,
            **stores.env(),
            "MAIE_DATA_DIR": str(run / "data"),
            "MAIE_MODEL_RESIDENCY": residency,
        }
        processes: list[Process] = []
        try:
            api = Api(env, run / "api.log")
            processes += [api, Process(["worker", "--queues", "maie.cpu"], env, run / "cpu.log")]
            task_ids = [api.submit(audio, headers=headers).json()["task_id"] for _ in range(tasks)]
            _wait(api, headers, task_ids, lambda b: b["stages"][0].get("status") == "done")
            asr_env = {**env, "MAIE_ASR_BATCH_MAX_TASKS": str(max_tasks), "MAIE_WORKER_THREADS": "1"}
            processes.append(Process(["worker", "--queues", "maie.gpu"], asr_env, run / "asr.log"))
            return _asr_window(_wait(api, headers, task_ids, lambda b: b["status"] == "COMPLETE"))
        finally:
            for process in reversed(processes):
                process.stop(timeout=10)


def _preprocessed(audio: Path, work: Path) -> AsrInput:
    target = work / "bench-preprocessed.wav"
    with Preprocessor(PreprocessOptions(min_duration_s=0.0, max_duration_s=14400.0)) as stage:
        artifact = stage.process(PreprocessInput(source=audio, target=target))
    return AsrInput(wav_path=target, duration_s=artifact.duration_s)


def backend_batching(
    backend_id: str, settings: Settings, audio: Path, work: Path, *, tasks: int, runs: int
) -> tuple[list[float], list[float]] | str:
    """Seconds for ``tasks`` recordings one by one and in one ``process_batch``, ``runs`` times each.

    Returns the reason instead when the backend is not available here.
    """
    info = REGISTRY.info(backend_id, settings)
    if not info.available:
        return info.unavailable_reason or "unavailable"
    items = [_preprocessed(audio, work)] * tasks
    with REGISTRY.create(backend_id, settings) as backend:
        backend.process_batch(items[:2])  # warm-up
        one_by_one, batched = [], []
        for _ in range(runs):
            started = time.perf_counter()
            for item in items:
                backend.process(item)
            one_by_one.append(time.perf_counter() - started)
            started = time.perf_counter()
            results = backend.process_batch(items)
            batched.append(time.perf_counter() - started)
            errors = [r for r in results if isinstance(r, Exception)]
            if errors:
                raise errors[0]
    return one_by_one, batched


def whisper_pipeline_batching(
    settings: Settings, audio: Path, work: Path, *, batch_size: int, runs: int
) -> tuple[list[float], list[float]]:
    """Seconds for one recording with sequential Whisper and with BatchedInferencePipeline."""
    item = _preprocessed(audio, work)
    figures = []
    for size in (None, batch_size):
        whisper = settings.whisper.__class__(
            **{**_fields(settings.whisper), "vad_filter": True, "batch_size": size, "language": "en"}
        )
        variant = Settings(**{**_fields(settings), "whisper": whisper})
        with REGISTRY.create("whisper", variant) as backend:
            backend.process(item)  # warm-up
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                backend.process(item)
                times.append(time.perf_counter() - started)
        figures.append(times)
    return figures[0], figures[1]


def _fields(struct: Any) -> dict[str, Any]:  # noqa: ANN401 - any settings Struct
    return {name: getattr(struct, name) for name in struct.__struct_fields__}


def ratio(slow: list[float], fast: list[float]) -> float:
    """Median of ``slow`` over median of ``fast``."""
    return statistics.median(slow) / statistics.median(fast)
