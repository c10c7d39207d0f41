"""Benchmark: status polling of the real API against a bare Litestar app serving the same bytes.

In one run, on this machine, with ``wrk`` as the load generator (Debian: ``apt-get install wrk``):

1. a private Redis and PostgreSQL (the embedded servers of ``maie up``, the database migrated)
   and a real ``maie api`` process on them, with ``MAIE_RATE_LIMIT=off``; one COMPLETE task with
   a transcript of ``--segments`` segments is written into the store the way the API (create)
   and the worker (result version 1, then the record) write it;
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
import contextlib
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
from typing import NamedTuple

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
from tests.fixtures.private_stores import private_stores  # noqa: E402
from tests.fixtures.services import Api, free_port  # noqa: E402

KEY = "bench-key"
TENANT = "bench"
#: Seconds the bare app may take to answer its first request.
BARE_START_S = 30.0
_RATE = re.compile(r"Requests/sec:\s+([0-9.]+)")
_TOTAL = re.compile(r"(\d+) requests in")
_TICK_S = 1 / os.sysconf("SC_CLK_TCK")
_ERRORS = re.compile(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="length of one wrk run (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the four (default: %(default)s)")
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
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "keeps", "on"]
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
        results=Results(raw_transcript=" ".join(s.text for s in parts), language="en", segments=parts),
        versions=Versions(pipeline_version="bench"),
    )
    return record, result


def store_task(database_url: str, redis_url: str, segments: int) -> str:
    """Write a finished task as the API (create) and the worker (result, then record) do."""
    record, result = finished_task(segments)
    store = AsyncTaskStore.from_urls(database_url, results_url(redis_url, 1), ttl_s=86400)
    pending = msgspec.structs.replace(
        record, status=TaskStatus.PENDING, result_version=None, completed_at=None
    )

    async def create() -> None:
        await store.create(pending)
        await store.close()

    asyncio.run(create())
    worker = TaskStore.from_urls(database_url, results_url(redis_url, 1))
    try:
        worker.put_result(record.task_id, result)

        def finish(stored: TaskRecord) -> None:
            stored.status, stored.result_version, stored.completed_at = (
                TaskStatus.COMPLETE,
                1,
                record.completed_at,
            )

        worker.update(record.task_id, finish)
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
        self.popen = subprocess.Popen(
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


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S


class Run(NamedTuple):
    """One wrk run against one server."""

    #: Requests per second (wrk's figure).
    rate: float
    #: Requests served per CPU second of the server process: what contention on the machine
    #: disturbs least.
    per_cpu_s: float


def wrk(url: str, headers: dict[str, str], pid: int, args: argparse.Namespace) -> Run:
    """One wrk run on the server ``pid``; errors are printed, never hidden."""
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    before = cpu_s(pid)
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    used = cpu_s(pid) - before
    for match in _ERRORS.finditer(out):
        print(f"  wrk on {url}: {match.group(0)}", file=sys.stderr)
    rate, total = _RATE.search(out), _TOTAL.search(out)
    if rate is None or total is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return Run(float(rate.group(1)), int(total.group(1)) / max(used, _TICK_S))


Target = tuple[str, dict[str, str], int]


def measure(targets: dict[str, Target], args: argparse.Namespace) -> dict[str, list[Run]]:
    """Every target once per round, the order rotating from round to round, after a warm-up."""
    names = list(targets)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    warm_up = argparse.Namespace(**{**vars(args), "seconds": 1})
    for url, headers, pid in targets.values():  # connections, caches, the first-request paths
        wrk(url, headers, pid, warm_up)
    for n in range(args.rounds):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            runs[name].append(wrk(*targets[name], args=args))
        print(f"round {n + 1}: " + ", ".join(f"{k} {v[-1].rate:.0f}" for k, v in runs.items()), flush=True)
    return runs


def report(runs: dict[str, list[Run]], args: argparse.Namespace, body_bytes: int) -> None:
    """Medians, spreads and the ratios the targets are about."""
    rate = {name: statistics.median(r.rate for r in values) for name, values in runs.items()}
    per_cpu = {name: statistics.median(r.per_cpu_s for r in values) for name, values in runs.items()}

    def per_round(a: str, b: str) -> float:
        return statistics.median(x.rate / y.rate for x, y in zip(runs[a], runs[b], strict=True))

    print(
        f"cpus: {os.cpu_count()}  wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, "
        f"{args.rounds} rounds  status body: {body_bytes} bytes"
    )
    for name, values in runs.items():
        rates = [r.rate for r in values]
        print(
            f"{name:>10}: {rate[name]:7.0f} req/s (median; min {min(rates):.0f}, max {max(rates):.0f})  "
            f"{per_cpu[name]:6.0f} requests per server CPU second"
        )
    print(
        f"status 200 / bare app: {rate['status 200'] / rate['bare app']:.2f} (medians), "
        f"{per_round('status 200', 'bare app'):.2f} (median of rounds)  target >= 0.5"
    )
    print(
        f"status 304 / status 200: {rate['status 304'] / rate['status 200']:.2f} (medians), "
        f"{per_round('status 304', 'status 200'):.2f} (median of rounds)  target >= 1"
    )
    print(f"health / bare app: {rate['health'] / rate['bare app']:.2f} (medians)")
    print(
        "per server CPU second, status 200 / bare app: "
        f"{per_cpu['status 200'] / per_cpu['bare app']:.2f}; 304 / 200: "
        f"{per_cpu['status 304'] / per_cpu['status 200']:.2f} (the CPU of Redis and PostgreSQL not counted)"
    )


def main() -> None:
    """Run the benchmark and print its table."""
    args = parse_args()
    if args.bare:
        serve_bare(int(args.bare[0]), Path(args.bare[1]))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="maie-bench-")))
        stores = stack.enter_context(private_stores(work))
        database_url, redis_url = stores.database_url, stores.redis_url
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAIE_")}
        env.update(
            {
                **stores.env(),
                "MAIE_DATA_DIR": str(work / "data"),
                "MAIE_API_KEYS": f"{KEY}:{TENANT}",
                "MAIE_RATE_LIMIT": "off",
                "MAIE_LOG_LEVEL": "warning",
            }
        )
        api = bare = None
        try:
            api = Api(env, work / "api.log")
            task_id = store_task(database_url, redis_url, args.segments)
            first = api.client.get(f"/v1/status/{task_id}", headers={"X-API-Key": KEY})
            first.raise_for_status()
            etag = first.headers["ETag"]
            (work / "body.json").write_bytes(first.content)
            (work / "etag").write_text(etag, encoding="utf-8")
            bare = Bare(work, task_id)
            status_url = f"{api.url}/v1/status/{task_id}"
            api_pid = api.popen.pid
            runs = measure(
                {
                    "status 200": (status_url, {"X-API-Key": KEY}, api_pid),
                    "status 304": (status_url, {"X-API-Key": KEY, "If-None-Match": etag}, api_pid),
                    "health": (f"{api.url}/health", {}, api_pid),
                    "bare app": (bare.url, {}, bare.popen.pid),
                },
                args,
            )
        finally:
            if bare is not None:
                bare.stop()
            if api is not None:
                api.stop()
    report(runs, args, len(first.content))


if __name__ == "__main__":
    main()
