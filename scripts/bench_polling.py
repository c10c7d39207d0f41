"""Benchmark: status polling of the real API against a bare Litestar app serving the same bytes.

In one run, on this machine, with ``wrk`` as the load generator (Debian: ``apt-get install wrk``):

1. a private Redis (the embedded server of ``maie up``) and a real ``maie api`` process on it,
   with ``MAIE_RATE_LIMIT=off``; one COMPLETE task with a transcript of ``--segments`` segments
   is written into the store the way the worker writes it (record, then result version 1);
2. a bare Litestar app (the baseline) in its own process, served by uvicorn with its defaults
   and no access log, answering the very bytes and headers the API answered for that task;
3. ``wrk -t2 -c50`` (by default) for ``--seconds`` on each of: ``GET /v1/status/{id}`` (200),
   the same with ``If-None-Match`` its ETag (304), ``GET /health``, and the bare app. The four
   take turns, in a rotating order, for ``--rounds`` rounds, so that load from other processes
   on the machine falls on all of them alike; the medians and their ratios are printed.

Targets (issue: status polling): status 200 >= 0.5 x the bare app; the 304 at least as fast as
the 200. It prints measurements and ratios; it asserts nothing.

    uv run python scripts/bench_polling.py
    uv run python scripts/bench_polling.py --rounds 5 --seconds 5 --connections 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import msgspec  # noqa: E402
import uvicorn  # noqa: E402
from litestar import Litestar, Response, get  # noqa: E402

from maie.schemas import (  # noqa: E402
    Feature,
    Results,
    ResultVersion,
    Segment,
    StageName,
    StageRecord,
    StageState,
    TaskRecord,
    TaskRequest,
    TaskStatus,
    Versions,
)
from maie.store import AsyncTaskStore, TaskStore, results_url  # noqa: E402
from maie.up.redis import EmbeddedRedis  # noqa: E402
from tests.fixtures.services import Api, free_port  # noqa: E402

KEY = "bench-key"
TENANT = "bench"
#: Seconds the bare app may take to answer its first request.
BARE_START_S = 30.0
_RATE = re.compile(r"Requests/sec:\s+([0-9.]+)")
_ERRORS = re.compile(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="length of one wrk run (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds over the four targets (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default: %(default)s)")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (default: %(default)s)")
    ap.add_argument("--segments", type=int, default=20, help="transcript segments (default: %(default)s)")
    ap.add_argument("--bare", nargs=2, metavar=("PORT", "FOLDER"), help=argparse.SUPPRESS)
    return ap.parse_args()


def finished_task(segments: int) -> tuple[TaskRecord, ResultVersion]:
    """A COMPLETE task of the bench tenant and its result version 1."""
    task_id = str(uuid.uuid4())
    submitted = datetime.now(UTC) - timedelta(minutes=5)
    done = submitted + timedelta(seconds=40)
    words = "the quick brown fox jumps over the lazy dog and keeps on running".split()
    parts = [
        Segment(id=i + 1, start=i * 5.0, end=i * 5.0 + 4.8, text=" ".join(words[i % 5 :] + words[: i % 5]))
        for i in range(segments)
    ]
    record = TaskRecord(
        task_id=task_id,
        tenant=TENANT,
        status=TaskStatus.COMPLETE,
        submitted_at=submitted,
        started_at=submitted + timedelta(seconds=1),
        completed_at=done,
        request=TaskRequest(
            features=[Feature.RAW_TRANSCRIPT], asr_backend="whisper", filename="call.wav", language="en"
        ),
        audio_path=f"audio/{task_id}/raw.wav",
        stages=[
            StageRecord(name=name, status=StageState.DONE, attempts=1, started_at=submitted, finished_at=done)
            for name in (StageName.PREPROCESS, StageName.TRANSCRIBE)
        ],
        result_version=1,
    )
    result = ResultVersion(
        version=1,
        created_at=done,
        kind="pipeline",
        results=Results(
            raw_transcript=" ".join(s.text for s in parts), language="en", segments=parts
        ),
        versions=Versions(pipeline_version="bench"),
    )
    return record, result


def store_task(url: str, segments: int) -> str:
    """Write a finished task as the API (create) and the worker (result, then record) do."""
    record, result = finished_task(segments)
    store = AsyncTaskStore.from_url(results_url(url, 1), ttl_s=86400)
    pending = msgspec.structs.replace(record, status=TaskStatus.PENDING, result_version=None, completed_at=None)

    async def create() -> None:
        await store.create(pending)
        await store.close()

    asyncio.run(create())
    worker = TaskStore.from_url(results_url(url, 1), ttl_s=86400)
    try:
        worker.put_result(record.task_id, result)

        def finish(stored: TaskRecord) -> None:
            stored.status, stored.result_version, stored.completed_at = (
                TaskStatus.COMPLETE,
                1,
                record.completed_at,
            )

        worker.update(record.task_id, finish)
        worker.client.zrem("maie:active", record.task_id)
    finally:
        worker.close()
    return record.task_id


def serve_bare(port: int, folder: Path) -> None:
    """The baseline: a bare Litestar app with one route answering the saved body and headers."""
    body = (folder / "body.json").read_bytes()
    etag = (folder / "etag").read_text(encoding="utf-8")

    @get("/v1/status/{task_id:str}")
    async def status(task_id: str) -> Response[bytes]:  # noqa: ARG001 - the id is not looked up
        return Response(
            body, media_type="application/json", headers={"ETag": etag, "Cache-Control": "no-cache"}
        )

    uvicorn.run(Litestar([status]), host="127.0.0.1", port=port, log_config=None, access_log=False)


class Bare:
    """The baseline app in a child process."""

    def __init__(self, folder: Path, task_id: str) -> None:
        self.port = free_port()
        self.popen = subprocess.Popen(  # noqa: S603 - this very script
            [sys.executable, __file__, "--bare", str(self.port), str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=(folder / "bare.log").open("wb"),
        )
        self.url = f"http://127.0.0.1:{self.port}/v1/status/{task_id}"
        deadline = time.monotonic() + BARE_START_S
        while True:
            try:
                httpx.get(self.url).raise_for_status()
            except httpx.TransportError:
                if time.monotonic() > deadline or self.popen.poll() is not None:
                    raise RuntimeError((folder / "bare.log").read_text()) from None
                time.sleep(0.1)
            else:
                return

    def stop(self) -> None:
        """Stop it and wait."""
        self.popen.terminate()
        self.popen.wait(timeout=30)


def wrk(url: str, headers: dict[str, str], args: argparse.Namespace) -> float:
    """Requests per second of one wrk run; errors are printed, never hidden."""
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout  # noqa: S603
    for match in _ERRORS.finditer(out):
        print(f"  wrk on {url}: {match.group(0)}", file=sys.stderr)
    found = _RATE.search(out)
    if found is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return float(found.group(1))


def main() -> None:
    """Run the benchmark and print its table."""
    args = parse_args()
    if args.bare:
        serve_bare(int(args.bare[0]), Path(args.bare[1]))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="maie-bench-") as tmp:
        work = Path(tmp)
        redis_server = EmbeddedRedis(work / "redis")
        redis_server.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAIE_")}
        env.update(
            {
                "MAIE_REDIS_URL": redis_server.url,
                "MAIE_DATA_DIR": str(work / "data"),
                "MAIE_API_KEYS": f"{KEY}:{TENANT}",
                "MAIE_RATE_LIMIT": "off",
                "MAIE_LOG_LEVEL": "warning",
            }
        )
        api = bare = None
        try:
            api = Api(env, work / "api.log")
            task_id = store_task(redis_server.url, args.segments)
            first = api.client.get(f"/v1/status/{task_id}", headers={"X-API-Key": KEY})
            first.raise_for_status()
            etag = first.headers["ETag"]
            (work / "body.json").write_bytes(first.content)
            (work / "etag").write_text(etag, encoding="utf-8")
            bare = Bare(work, task_id)
            status_url = f"{api.url}/v1/status/{task_id}"
            targets = {
                "status 200": (status_url, {"X-API-Key": KEY}),
                "status 304": (status_url, {"X-API-Key": KEY, "If-None-Match": etag}),
                "health": (f"{api.url}/health", {}),
                "bare app": (bare.url, {}),
            }
            names = list(targets)
            rates: dict[str, list[float]] = {name: [] for name in names}
            ratios: list[float] = []
            for name in names:  # warm-up: connections, caches, the first-request paths
                wrk(targets[name][0], targets[name][1], argparse.Namespace(**{**vars(args), "seconds": 1}))
            for n in range(args.rounds):
                order = names[n % len(names) :] + names[: n % len(names)]
                for name in order:
                    rates[name].append(wrk(*targets[name], args))
                ratios.append(rates["status 200"][-1] / rates["bare app"][-1])
                print(f"round {n + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()))
        finally:
            if bare is not None:
                bare.stop()
            if api is not None:
                api.stop()
            redis_server.stop()

    med = {name: statistics.median(values) for name, values in rates.items()}
    print(
        f"cpus: {os.cpu_count()}  wrk -t{args.threads} -c{args.connections} -d{args.seconds}s x "
        f"{args.rounds} rounds  body: {len(first.content)} bytes"
    )
    for name, values in rates.items():
        print(f"{name:>10}: {med[name]:7.0f} req/s (median; min {min(values):.0f}, max {max(values):.0f})")
    print(f"status 200 / bare app (medians): {med['status 200'] / med['bare app']:.2f}  (target >= 0.5)")
    print(f"status 200 / bare app, per round: median {statistics.median(ratios):.2f}")
    print(f"status 304 / status 200 (medians): {med['status 304'] / med['status 200']:.2f}  (target >= 1)")
    print(f"health / bare app (medians): {med['health'] / med['bare app']:.2f}")


if __name__ == "__main__":
    main()
