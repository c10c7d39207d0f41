"""Benchmark: MAIE end to end against bare faster-whisper, and status-poll throughput.

For one audio file and one model, in the same run on the same machine:

1. the service's end-to-end time for ``features=raw_transcript`` — POST /v1/process until the status
   is COMPLETE — with a warm, resident model (one warm-up task first);
2. bare ``faster_whisper.WhisperModel.transcribe`` on the same file with the same decoding options
   (taken from the same settings), model loaded once;
3. status polling: GET /v1/status/{id} per second, plain and with If-None-Match (304).

It prints measurements and their ratio; it asserts nothing.

With ``--batching`` it measures batched against one-by-one ASR instead (scripts/bench_batching.py):
``--batch-tasks`` waiting tasks through the service with MAIE_ASR_BATCH_MAX_TASKS=1 and =N, each
backend's ``process_batch`` against ``process`` per recording, and Whisper's batched pipeline.

    uv run python scripts/bench.py --tiny                       # tiny random model, built here
    uv run python scripts/bench.py --model /models/whisper-small-ct2 --audio ../shared/audio/jfk.flac
    uv run python scripts/bench.py --tiny --batching            # batched vs one-by-one

With ``--diarization`` it measures the diarization stage instead (scripts/bench_diarization.py):
DER on the guard's recordings, the stage's real-time factor, peak RSS; ``--record`` rewrites the
DER baseline of tests/quality/der_baseline.json. Then the whole task through the service, on one
worker: ``diarize=true`` against ``false`` on the same recording (the AMI excerpt unless
``--audio``), alternated, as a ratio of medians, and the worker's peak RSS. The ASR model is the
tiny random one unless ``--model`` names a real one (a real model makes ASR, and so the ratio's
denominator, realistic).

    uv run python scripts/bench.py --diarization [--record] [--model /models/whisper-small-ct2]
    uv run python scripts/bench.py --diarization --whole-task-only --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maie.config import Settings  # noqa: E402
from maie.pipeline.asr.whisper_options import WhisperOptions  # noqa: E402
from tests.fixtures.private_stores import private_stores  # noqa: E402
from tests.fixtures.services import Api, Process  # noqa: E402

KEY = "bench-key"
DEFAULT_AUDIO = ROOT.parent / "shared" / "audio" / "jfk.flac"
#: The recording of the whole-task diarization figure: four speakers, overlapping speech.
DIARIZATION_AUDIO = ROOT.parent / "shared" / "audio" / "pyannote" / "ami_mixture_4spk.wav"


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--audio", type=Path, default=None, help=f"audio (default: {DEFAULT_AUDIO.name}; diarization: AMI)"
    )
    model = ap.add_mutually_exclusive_group()
    model.add_argument("--model", help="faster-whisper model: a local CTranslate2 folder or a model name")
    model.add_argument("--tiny", action="store_true", help="build and use the tiny random test model")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each side (default: %(default)s)")
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--temperature", default="0.0,0.2,0.4,0.6,0.8,1.0")
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--cpu-threads", type=int, default=0)
    ap.add_argument("--vad", choices=["true", "false"], default="true")
    ap.add_argument("--poll-seconds", type=float, default=3.0, help="length of each polling measurement")
    ap.add_argument("--batching", action="store_true", help="measure batched vs one-by-one ASR instead")
    ap.add_argument("--batch-tasks", type=int, default=8, help="tasks per batch (default: %(default)s)")
    ap.add_argument("--residency", choices=["sequential", "resident"], default="sequential")
    ap.add_argument("--chunkformer-model", help="ChunkFormer model folder (with --tiny: a tiny one is built)")
    ap.add_argument("--diarization", action="store_true", help="measure the diarization stage instead")
    ap.add_argument("--record", action="store_true", help="with --diarization: rewrite the DER baseline")
    ap.add_argument(
        "--whole-task-only", action="store_true", help="with --diarization: only the whole-task figures"
    )
    args = ap.parse_args()
    if not args.diarization and not (args.model or args.tiny):
        ap.error("one of the arguments --model --tiny is required (unless --diarization)")
    if args.diarization and not args.model:
        args.tiny = True
    if args.audio is None:
        args.audio = DIARIZATION_AUDIO if args.diarization else DEFAULT_AUDIO
    return args


def whisper_env(args: argparse.Namespace, model: str) -> dict[str, str]:
    """MAIE_WHISPER_* for both sides of the comparison."""
    env = {
        "MAIE_WHISPER_MODEL": model,
        "MAIE_WHISPER_BEAM_SIZE": str(args.beam_size),
        "MAIE_WHISPER_TEMPERATURE": args.temperature,
        "MAIE_WHISPER_CPU_THREADS": str(args.cpu_threads),
        "MAIE_WHISPER_VAD_FILTER": args.vad,
    }
    if args.max_new_tokens:
        env["MAIE_WHISPER_MAX_NEW_TOKENS"] = str(args.max_new_tokens)
    return env


def timed_task(api: Api, worker: Process, audio: Path, **fields: str) -> tuple[float, dict[str, Any]]:
    """Seconds from POST /v1/process of ``audio`` with form ``fields`` until COMPLETE, and the status."""
    headers = {"X-API-Key": KEY}
    started = time.perf_counter()
    response = api.submit(audio, headers=headers, **fields)
    response.raise_for_status()
    task_id = response.json()["task_id"]
    while True:
        body = api.client.get(f"/v1/status/{task_id}", headers=headers).json()
        if body["status"] == "COMPLETE":
            return time.perf_counter() - started, body
        if body["status"] == "FAILED":
            msg = f"task failed: {body.get('error')}\n{worker.log()[-2000:]}"
            raise RuntimeError(msg)
        time.sleep(0.01)


def stage_seconds(body: dict[str, Any], name: str) -> float:
    """How long stage ``name`` of a finished task took, by its record."""
    return float(next(s["duration_s"] for s in body["stages"] if s["name"] == name))


def run_service(args: argparse.Namespace, env: dict[str, str], work: Path) -> tuple[list[float], Api]:
    """End-to-end seconds of ``args.runs`` tasks after one warm-up task; returns the running API too."""
    api = Api(env, work / "api.log")
    worker = Process(["worker"], env, work / "worker.log")
    timed_task(api, worker, args.audio)  # warm-up: loads the model into the resident cache
    times = [timed_task(api, worker, args.audio)[0] for _ in range(args.runs)]
    worker.stop()
    return times, api


def tree_peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of process ``pid`` and its descendants, summed, in MiB."""
    total_kib, pending = 0, [pid]
    while pending:
        current = pending.pop()
        proc = Path(f"/proc/{current}")
        try:
            status = (proc / "status").read_text(encoding="ascii")
            for task in (proc / "task").iterdir():
                pending += [int(child) for child in (task / "children").read_text(encoding="ascii").split()]
        except OSError:  # exited meanwhile
            continue
        peak = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
        total_kib += sum(peak)
    return total_kib / 1024


def run_whole_task(args: argparse.Namespace, env: dict[str, str], work: Path) -> None:
    """Print whole-task seconds with ``diarize=true`` against ``false`` on one worker, and its peak RSS.

    Both kinds are warmed up first (ASR model and diarizer resident), then alternated, so a change
    in the load of a shared machine falls on both alike.
    """
    api = Api(env, work / "api.log")
    worker = Process(["worker"], env, work / "worker.log")
    try:
        timed_task(api, worker, args.audio)
        timed_task(api, worker, args.audio, diarize="true")
        plain: list[float] = []
        diarized: list[float] = []
        stages: dict[str, list[float]] = {"transcribe": [], "diarize": []}
        for _ in range(args.runs):
            plain.append(timed_task(api, worker, args.audio)[0])
            seconds, body = timed_task(api, worker, args.audio, diarize="true")
            diarized.append(seconds)
            for name, times in stages.items():
                times.append(stage_seconds(body, name))
            duration = body["metrics"]["input_duration_seconds"]
        rss = tree_peak_rss_mib(worker.popen.pid)
    finally:
        worker.stop()
        api.stop()
    model = "tiny random" if args.tiny else args.model
    print(f"whole task through the service, {args.audio.name}, asr: {model}")
    print(f"  diarize=false: {summary(plain)}")
    print(f"  diarize=true:  {summary(diarized)}")
    ratio = statistics.median(diarized) / statistics.median(plain)
    print(f"  ratio diarize=true / false (medians): {ratio:.2f}")
    for name, times in stages.items():
        rtf = statistics.median(times) / duration
        print(f"  with diarize=true, stage {name}: {summary(times)}  RTF {rtf:.3f}")
    print(f"  worker peak RSS (process tree, VmHWM): {rss:.0f} MiB")


def run_bare(args: argparse.Namespace, env: dict[str, str], data_dir: Path) -> list[float]:
    """Seconds of bare faster-whisper transcribe + materialised segments, model loaded once."""
    from faster_whisper import WhisperModel

    settings = Settings.from_env(env, env_file=None)
    options = WhisperOptions.from_settings(settings.whisper, data_dir)
    kwargs = options.transcribe_kwargs(language=None, word_timestamps=None)
    model = WhisperModel(
        options.model,
        device=options.device,
        compute_type=options.compute_type,
        cpu_threads=options.cpu_threads,
    )

    def one() -> float:
        started = time.perf_counter()
        segments, _ = model.transcribe(str(args.audio), **kwargs)
        list(segments)
        return time.perf_counter() - started

    one()
    return [one() for _ in range(args.runs)]


def poll_rate(api: Api, task_id: str, seconds: float, threads: int, *, etag: str | None) -> float:
    """Status requests answered per second by ``threads`` clients polling one task."""
    headers = {"X-API-Key": KEY, **({"If-None-Match": etag} if etag else {})}
    expected = 304 if etag else 200
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def loop(i: int) -> None:
        with httpx.Client(base_url=api.url, timeout=10) as client:
            while time.perf_counter() < deadline:
                if client.get(f"/v1/status/{task_id}", headers=headers).status_code == expected:
                    counts[i] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / seconds


def summary(times: list[float]) -> str:
    """Median, min and max of a list of seconds."""
    median = statistics.median(times)
    return f"median {median:.3f} s  (min {min(times):.3f}, max {max(times):.3f}, n={len(times)})"


def main() -> None:
    """Run the benchmark and print its table."""
    args = parse_args()
    if args.diarization:
        import bench_diarization

        if not args.whole_task_only:
            bench_diarization.run(args.runs, record=args.record)
    with tempfile.TemporaryDirectory(prefix="maie-bench-") as tmp:
        work = Path(tmp)
        model = args.model
        if args.tiny:
            from tests.fixtures.paths import TOKENIZER_DIR
            from tests.fixtures.whisper_model import build_tiny_whisper

            model = str(
                build_tiny_whisper(work / "tiny-whisper", TOKENIZER_DIR / "whisper-tiny" / "tokenizer.json")
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAIE_")}
        env.update(whisper_env(args, model))
        env.update(
            {
                "MAIE_DATA_DIR": str(work / "data"),
                "MAIE_API_KEYS": KEY,
                "MAIE_MODEL_RESIDENCY": "resident",
                "MAIE_LOG_LEVEL": "warning",
                "MAIE_STATUS_RETRY_AFTER_S": "1",
                # Measure the service's capacity, not the per-key rate limit.
                "MAIE_RATE_LIMIT": "off",
                "MAIE_RATE_LIMIT_SUBMIT": "off",
            }
        )
        if args.batching:  # on stores of its own, one pair per measured window
            run_batching(args, env, work, model)
            return
        with private_stores(work / "stores") as stores:
            env.update(stores.env())
            if args.diarization:
                run_whole_task(args, env, work)
                return
            service, api = run_service(args, env, work)
            bare = run_bare(args, env, work / "data")
            task_id = api.submit(args.audio, headers={"X-API-Key": KEY}).json()["task_id"]
            first = api.client.get(f"/v1/status/{task_id}", headers={"X-API-Key": KEY})
            rates = {
                "1 client, 200": poll_rate(api, task_id, args.poll_seconds, 1, etag=None),
                "8 clients, 200": poll_rate(api, task_id, args.poll_seconds, 8, etag=None),
                "8 clients, 304": poll_rate(api, task_id, args.poll_seconds, 8, etag=first.headers["ETag"]),
            }
            api.stop()

    print(f"audio: {args.audio}  model: {'tiny random' if args.tiny else model}  cpus: {os.cpu_count()}")
    print(f"options: beam={args.beam_size} temperature={args.temperature} vad={args.vad} ")
    print(f"service end to end (raw_transcript, resident, warm): {summary(service)}")
    print(f"bare faster-whisper transcribe (same options, warm):  {summary(bare)}")
    print(f"ratio service / bare (medians): {statistics.median(service) / statistics.median(bare):.2f}")
    for name, rate in rates.items():
        print(f"status polling, {name}: {rate:.0f} requests/s")


def run_batching(args: argparse.Namespace, env: dict[str, str], work: Path, model: str) -> None:
    """Measure and print batched vs one-by-one ASR (see scripts/bench_batching.py)."""
    import bench_batching as bb

    n = args.batch_tasks
    print(f"audio: {args.audio}  model: {'tiny random' if args.tiny else model}  cpus: {os.cpu_count()}")
    windows = bb.service_batching(args.audio, n, env, work, key=KEY, residency=args.residency, runs=args.runs)
    print(f"service, {n} waiting tasks, {args.residency} residency, ASR window (first start to last end):")
    print(f"  one by one (MAIE_ASR_BATCH_MAX_TASKS=1): {summary(windows[1])}")
    print(f"  batched    (MAIE_ASR_BATCH_MAX_TASKS={n}): {summary(windows[n])}")
    print(f"  ratio one-by-one / batched (medians): {bb.ratio(windows[1], windows[n]):.2f}")

    cf_model = args.chunkformer_model
    if cf_model is None and args.tiny:
        from maie.pipeline.asr.chunkformer_options import torch_stack

        if torch_stack().problem is None:
            from tests.fixtures.chunkformer_model import build_tiny_chunkformer

            cf_model = str(build_tiny_chunkformer(work / "tiny-chunkformer"))
    extra = {"MAIE_CHUNKFORMER_RETURN_TIMESTAMPS": "false"}
    if cf_model:
        extra["MAIE_CHUNKFORMER_MODEL"] = cf_model
    settings = Settings.from_env({**env, **extra, "MAIE_DATA_DIR": str(work / "backend")}, env_file=None)
    print(f"backends in process, {n} recordings, one loaded model, median of {args.runs}:")
    for backend_id in ("whisper", "chunkformer"):  # PocketSphinx has no batch path: it would only loop
        figures = bb.backend_batching(backend_id, settings, args.audio, work, tasks=n, runs=args.runs)
        if isinstance(figures, str):
            print(f"  {backend_id}: not measured ({figures})")
            continue
        one, batched = figures
        print(
            f"  {backend_id}: one by one {statistics.median(one):.3f} s, process_batch "
            f"{statistics.median(batched):.3f} s, ratio {bb.ratio(one, batched):.2f}"
        )
    sequential, pipelined = bb.whisper_pipeline_batching(
        settings, args.audio, work, batch_size=8, runs=args.runs
    )
    print(
        f"whisper, one recording: sequential {statistics.median(sequential):.3f} s, "
        f"BatchedInferencePipeline(batch_size=8) {statistics.median(pipelined):.3f} s, "
        f"ratio {bb.ratio(sequential, pipelined):.2f}"
    )


if __name__ == "__main__":
    main()
