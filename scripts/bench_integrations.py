"""Benchmark of the integration paths: batches, the task list and webhooks, each against a baseline.

On a private Redis and PostgreSQL with a real API and worker (tiny random Whisper model, built
here), in one run:

1. **Intake.** N recordings submitted one by one (N x POST /v1/process, sequential: the baseline)
   against the same N as one zip to POST /v1/batches: seconds until every task is accepted.
2. **Task list.** With T tasks indexed for one tenant, GET /v1/tasks?limit=50 for the first page
   (baseline) and for a page T/2 deep, reached through cursors: the cursor makes depth free.
3. **Webhooks.** Seconds from a task's ``completed_at`` to its signed webhook arriving at a local
   receiver (no baseline: the absolute latency, for the record).

It prints measurements and ratios; it asserts nothing.

    uv run python scripts/bench_integrations.py --recordings 40 --tasks 5000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maie.schemas import Feature, StageName, StageRecord, TaskRecord, TaskRequest, TaskStatus  # noqa: E402
from maie.store import AsyncTaskStore, results_url  # noqa: E402
from tests.fixtures.paths import AUDIO_DIR, TOKENIZER_DIR  # noqa: E402
from tests.fixtures.private_stores import private_stores  # noqa: E402
from tests.fixtures.receiver import Receiver, serve  # noqa: E402
from tests.fixtures.services import Api, Process  # noqa: E402
from tests.fixtures.whisper_model import build_tiny_whisper  # noqa: E402

KEY = "bench-key"
SECRET = "bench-secret"  # noqa: S105 - a throwaway key for this run
HEADERS = {"X-API-Key": KEY}
CLIP = AUDIO_DIR / "lhotse" / "LJ002-0020.wav"


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--recordings", type=int, default=40, help="recordings per intake run (default: %(default)s)"
    )
    ap.add_argument(
        "--tasks", type=int, default=5000, help="tasks indexed for the list (default: %(default)s)"
    )
    ap.add_argument("--runs", type=int, default=3, help="runs of each measurement (default: %(default)s)")
    return ap.parse_args()


def median(values: list[float]) -> str:
    """Median with min and max, in milliseconds."""
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):.1f} ms (min {min(ms):.1f}, max {max(ms):.1f}, n={len(ms)})"


def wait_idle(api: Api) -> None:
    """Until no task is unfinished (the intake runs must not fill the queue for each other)."""
    while api.client.get("/health").json()["queue_depth"]:
        time.sleep(0.2)


def intake(api: Api, n: int, runs: int) -> tuple[list[float], list[float]]:
    """Seconds to get ``n`` recordings accepted: one by one, and as one zipped batch."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(n):
            archive.write(CLIP, f"talks/{i:03d}.wav")
    data = buffer.getvalue()
    single, batch = [], []
    for _ in range(runs):
        wait_idle(api)
        started = time.perf_counter()
        for _ in range(n):
            api.submit(CLIP, headers=HEADERS).raise_for_status()
        single.append(time.perf_counter() - started)
        wait_idle(api)
        started = time.perf_counter()
        response = api.client.post(
            "/v1/batches",
            headers=HEADERS,
            files={"file": ("talks.zip", data)},
            data={"features": "raw_transcript"},
        )
        response.raise_for_status()
        batch.append(time.perf_counter() - started)
    wait_idle(api)
    return single, batch


async def index_tasks(database_url: str, url: str, count: int) -> None:
    """Index ``count`` finished tasks of the bench tenant directly in the store."""
    store = AsyncTaskStore.from_urls(database_url, results_url(url, 1), ttl_s=86400)
    start = datetime.now(UTC) - timedelta(hours=1)
    for i in range(count):
        await store.create(
            TaskRecord(
                task_id=str(uuid.uuid4()),
                tenant="default",
                status=TaskStatus.COMPLETE,
                submitted_at=start + timedelta(milliseconds=i),
                request=TaskRequest(features=[Feature.RAW_TRANSCRIPT], asr_backend="whisper"),
                audio_path="/nowhere",
                stages=[StageRecord(name=StageName.PREPROCESS)],
            )
        )
    await store.close()


def list_pages(api: Api, depth: int, runs: int) -> tuple[list[float], list[float]]:
    """Seconds of the first page and of the page ``depth`` pages down."""
    cursor = None
    for _ in range(depth):
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        cursor = api.client.get("/v1/tasks", headers=HEADERS, params=params).json()["next_cursor"]
    first, deep = [], []
    for _ in range(runs * 10):
        started = time.perf_counter()
        api.client.get("/v1/tasks", headers=HEADERS, params={"limit": 50}).raise_for_status()
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        api.client.get(
            "/v1/tasks", headers=HEADERS, params={"limit": 50, "cursor": cursor}
        ).raise_for_status()
        deep.append(time.perf_counter() - started)
    return first, deep


def webhook_latency(api: Api, runs: int) -> list[float]:
    """Seconds from completed_at to the webhook's arrival."""
    gen = serve(Receiver(secret=SECRET))
    receiver = next(gen)
    latencies = []
    try:
        for _ in range(runs):
            task_id = api.submit(CLIP, headers=HEADERS, callback_url=receiver.url).json()["task_id"]
            while not any(d.body["task_id"] == task_id for d in receiver.deliveries):
                time.sleep(0.005)
            arrived = datetime.now(UTC)
            status = api.client.get(f"/v1/status/{task_id}", headers=HEADERS).json()
            latencies.append((arrived - datetime.fromisoformat(status["completed_at"])).total_seconds())
    finally:
        gen.close()
    return latencies


def main() -> None:
    """Run the benchmark and print its table."""
    args = parse_args()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="maie-bench-")))
        model = build_tiny_whisper(work / "tiny-whisper", TOKENIZER_DIR / "whisper-tiny" / "tokenizer.json")
        stores = stack.enter_context(private_stores(work))
        database_url, redis_url = stores.database_url, stores.redis_url
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAIE_")}
        env.update(
            {
                **stores.env(),
                "MAIE_DATA_DIR": str(work / "data"),
                "MAIE_API_KEYS": KEY,
                "MAIE_WHISPER_MODEL": str(model),
                "MAIE_WHISPER_BEAM_SIZE": "1",
                "MAIE_WHISPER_TEMPERATURE": "0.0",
                "MAIE_WHISPER_MAX_NEW_TOKENS": "16",
                "MAIE_MODEL_RESIDENCY": "resident",
                "MAIE_MAX_QUEUE_DEPTH": str(max(50, args.recordings * 2)),
                "MAIE_STATUS_RETRY_AFTER_S": "1",
                "MAIE_WEBHOOK_SECRET": SECRET,
                "MAIE_WEBHOOK_ALLOW_PRIVATE": "true",
                "MAIE_LOG_LEVEL": "warning",
                "HF_HUB_OFFLINE": "1",
            }
        )
        api = Api(env, work / "api.log")
        worker = Process(["worker"], env, work / "worker.log")
        try:
            single, batch = intake(api, args.recordings, args.runs)
            latency = webhook_latency(api, args.runs * 3)
            asyncio.run(index_tasks(database_url, redis_url, args.tasks))
            first, deep = list_pages(api, args.tasks // 100, args.runs)
        finally:
            worker.stop()
            api.stop()

    print(f"clip: {CLIP.name}  cpus: {os.cpu_count()}  recordings: {args.recordings}  tasks: {args.tasks}")
    print(f"intake, {args.recordings} x POST /v1/process (sequential): {median(single)}")
    print(f"intake, 1 x POST /v1/batches (zip of {args.recordings}):     {median(batch)}")
    print(f"ratio one-by-one / batch (medians): {statistics.median(single) / statistics.median(batch):.2f}")
    print(f"GET /v1/tasks?limit=50, first page: {median(first)}")
    print(f"GET /v1/tasks?limit=50, page {args.tasks // 100 + 1}:   {median(deep)}")
    print(f"ratio deep / first page (medians): {statistics.median(deep) / statistics.median(first):.2f}")
    print(f"webhook latency after completed_at: {median(latency)}")


if __name__ == "__main__":
    main()
