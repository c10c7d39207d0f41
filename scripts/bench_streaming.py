"""Benchmark: live transcription latency and cost, 1, 4 and 8 streams at real-time pace.

Sessions run as the WebSocket endpoint will run them: one asyncio event loop receives every
stream's 20 ms frames at real-time pace and calls ``push`` on the loop; each stream's ``poll``
runs in a thread pool (one thread per stream), woken when frames arrive. Measured per backend and
number of streams:

- first-partial latency: from the push of the audio where the first partial's segment starts
  (speech onset) to the partial's arrival on the loop;
- final latency after the end of speech: from the push of the audio at a final segment's end
  to its arrival (p50, p95 over all finals of all streams);
- real-time factor: CPU time of the whole run (this process's threads and the recognizer
  processes) per second of audio per stream, and decoding wall time per second of audio (it
  includes waiting for a core), mean per stream;
- whether streams kept up: the largest backlog seen, and the time after the last frame until
  the last final;
- what the loop felt: the lateness of a 10 ms timer (p95, max) and the cost of ``push``;
- memory: resident set growth with the sessions open (this process and its children).

It prints the load average (as ``uptime`` does) before and after each run: the machine may be
shared, and a loaded one stretches every figure.
It asserts nothing.

    uv run python scripts/bench_streaming.py                      # both backends, 1/4/8 streams
    uv run python scripts/bench_streaming.py --backends pocketsphinx --streams 1 2 --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maie.config import Settings  # noqa: E402
from maie.pipeline.streaming import FinalEvent, PartialEvent, StreamingEngine, StreamRequest  # noqa: E402

DEFAULT_AUDIO = ROOT.parent / "shared" / "audio" / "jfk_16k.wav"
TOKENIZER = ROOT.parent / "shared" / "models" / "whisper-tokenizer" / "whisper-tiny" / "tokenizer.json"
FRAME_S = 0.02
RATE = 16000


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--audio", type=Path, default=DEFAULT_AUDIO, help="16 kHz mono WAV (default: %(default)s)"
    )
    ap.add_argument("--repeat", type=int, default=2, help="times the clip is played in each stream")
    ap.add_argument("--backends", nargs="+", default=["pocketsphinx", "whisper"])
    ap.add_argument("--streams", nargs="+", type=int, default=[1, 4, 8])
    ap.add_argument(
        "--whisper-model", help="CTranslate2 Whisper folder (default: the tiny random test model)"
    )
    return ap.parse_args()


def uptime() -> str:
    """The load averages (1, 5, 15 min), as ``uptime`` prints them."""
    one, five, fifteen = Path("/proc/loadavg").read_text(encoding="ascii").split()[:3]
    return f"load average: {one}, {five}, {fifteen}"


def rss_mib() -> float:
    """Resident set size of this process and its children (PocketSphinx's recognizer processes)."""
    pids = ["self", *(str(child.pid) for child in multiprocessing.active_children())]
    pages = sum(int(Path(f"/proc/{pid}/statm").read_text(encoding="ascii").split()[1]) for pid in pids)
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_s() -> float:
    """CPU seconds used so far by this process (all threads) and its children, live or reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = reaped.ru_utime + reaped.ru_stime
    for child in multiprocessing.active_children():
        fields = Path(f"/proc/{child.pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        children += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return time.process_time() + children


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); NaN when there are no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class StreamStats:
    """What one stream measured."""

    first_partial_s: float | None = None
    final_latencies_s: list[float] = field(default_factory=list)
    decode_cpu_s: float = 0.0
    decode_wall_s: float = 0.0
    max_backlog_s: float = 0.0
    push_s: list[float] = field(default_factory=list)
    drain_s: float = 0.0
    finals: int = 0


class Stream:
    """One client: frames pushed at real-time pace on the loop, polls in the pool."""

    def __init__(self, session: Any, pcm: np.ndarray, pool: ThreadPoolExecutor) -> None:  # noqa: ANN401 - a StreamSession
        self.session, self.pcm, self.pool = session, pcm, pool
        self.stats = StreamStats()
        self.pushed_at: list[tuple[int, float]] = []  # (samples pushed so far, wall time)
        self.events: list[tuple[float, Any]] = []
        self.wake = asyncio.Event()
        self.pushing = True

    def _timed(self, call: Any) -> tuple[list[Any], float]:  # noqa: ANN401 - poll or finish
        started = time.thread_time()
        events = call()
        return events, time.thread_time() - started

    async def _decode(self, call: Any) -> None:  # noqa: ANN401 - poll or finish
        started = time.perf_counter()
        events, cpu = await asyncio.get_running_loop().run_in_executor(self.pool, self._timed, call)
        now = time.perf_counter()
        self.stats.decode_cpu_s += cpu
        self.stats.decode_wall_s += now - started
        self.events += [(now, e) for e in events]

    async def pump(self) -> None:
        """Poll whenever frames arrived, until the last frame is in and transcribed."""
        while self.pushing or self.session.backlog_s > 0:
            await self.wake.wait()
            self.wake.clear()
            self.stats.max_backlog_s = max(self.stats.max_backlog_s, self.session.backlog_s)
            await self._decode(self.session.poll)

    async def run(self) -> None:
        """Push the clip at real-time pace, then finish the session."""
        pump = asyncio.create_task(self.pump())
        step = round(RATE * FRAME_S)
        start = time.perf_counter()
        for n, offset in enumerate(range(0, self.pcm.size, step)):
            await asyncio.sleep(max(0.0, start + n * FRAME_S - time.perf_counter()))
            began = time.perf_counter()
            self.session.push(self.pcm[offset : offset + step].tobytes())
            self.stats.push_s.append(time.perf_counter() - began)
            self.pushed_at.append((min(offset + step, self.pcm.size), time.perf_counter()))
            self.wake.set()
        last_frame = time.perf_counter()
        self.pushing = False
        self.wake.set()
        await pump
        await self._decode(self.session.finish)
        self.stats.drain_s = time.perf_counter() - last_frame
        self._latencies()

    def _pushed(self, seconds: float) -> float:
        """Wall time at which the audio at ``seconds`` had been pushed."""
        samples = [s for s, _ in self.pushed_at]
        index = min(bisect.bisect_left(samples, round(seconds * RATE)), len(samples) - 1)
        return self.pushed_at[index][1]

    def _latencies(self) -> None:
        for at, event in self.events:
            if isinstance(event, PartialEvent) and self.stats.first_partial_s is None:
                self.stats.first_partial_s = at - self._pushed(event.start)
            elif isinstance(event, FinalEvent) and event.segment.text:
                self.stats.finals += 1
                self.stats.final_latencies_s.append(at - self._pushed(event.segment.end))


async def loop_lag(stop: asyncio.Event, out: list[float]) -> None:
    """Lateness of a 10 ms timer: how long the loop was kept from running ready callbacks."""
    while not stop.is_set():
        began = time.perf_counter()
        await asyncio.sleep(0.01)
        out.append(time.perf_counter() - began - 0.01)


async def run_streams(
    engine: StreamingEngine, backend: str, pcm: np.ndarray, count: int, tmp: Path
) -> dict[str, Any]:
    """``count`` concurrent streams of ``pcm``; their stats merged."""
    pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="poll")
    loop = asyncio.get_running_loop()
    before = rss_mib()
    sessions = [
        await loop.run_in_executor(
            pool, engine.open, StreamRequest(backend=backend), tmp / f"{backend}-{n}.wav"
        )
        for n in range(count)
    ]
    opened = rss_mib()
    streams = [Stream(s, pcm, pool) for s in sessions]
    cpu_before = cpu_s()
    stop, lags = asyncio.Event(), []
    lag = asyncio.create_task(loop_lag(stop, lags))
    await asyncio.gather(*(s.run() for s in streams))
    stop.set()
    await lag
    cpu_used = cpu_s() - cpu_before
    pool.shutdown()
    audio_s = pcm.size / RATE
    stats = [s.stats for s in streams]
    firsts = [s.first_partial_s for s in stats if s.first_partial_s is not None]
    finals = [x for s in stats for x in s.final_latencies_s]
    return {
        "first_partial_p50_s": percentile(firsts, 50),
        "final_p50_s": percentile(finals, 50),
        "final_p95_s": percentile(finals, 95),
        "finals": len(finals),
        "rtf_cpu": cpu_used / (audio_s * count),
        "rtf_wall": statistics.mean(s.decode_wall_s / audio_s for s in stats),
        "max_backlog_s": max(s.max_backlog_s for s in stats),
        "drain_s": max(s.drain_s for s in stats),
        "loop_lag_p95_ms": percentile(lags, 95) * 1000,
        "loop_lag_max_ms": max(lags) * 1000 if lags else float("nan"),
        "push_us": statistics.mean(x for s in stats for x in s.push_s) * 1e6,
        "rss_per_session_mib": (opened - before) / count,
    }


def whisper_env(args: argparse.Namespace, tmp: Path) -> dict[str, str]:
    """MAIE_WHISPER_* for the chosen model (the tiny random one is built here, as the tests do)."""
    if args.whisper_model:
        return {"MAIE_WHISPER_MODEL": args.whisper_model, "MAIE_WHISPER_DEVICE": "cpu"}
    from tests.fixtures.whisper_model import build_tiny_whisper

    model = build_tiny_whisper(tmp / "tiny-whisper", TOKENIZER)
    return {
        "MAIE_WHISPER_MODEL": str(model),
        "MAIE_WHISPER_DEVICE": "cpu",
        "MAIE_WHISPER_BEAM_SIZE": "1",
        "MAIE_WHISPER_TEMPERATURE": "0.0",
        "MAIE_WHISPER_MAX_NEW_TOKENS": "20",
        "MAIE_WHISPER_CPU_THREADS": "1",
        "MAIE_WHISPER_LANGUAGE": "en",
    }


def main() -> None:
    """Run every backend at every stream count and print one line each."""
    args = parse_args()
    with wave.open(str(args.audio), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (RATE, 1, 2):
            sys.exit(f"{args.audio} must be a 16 kHz mono 16-bit WAV")
        pcm = np.tile(np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"), args.repeat)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        settings = Settings.from_env({"MAIE_DATA_DIR": str(tmp), **whisper_env(args, tmp)}, env_file=None)
        engine = StreamingEngine(settings)
        seconds = pcm.size / RATE
        print(f"audio: {args.audio.name} x{args.repeat} = {seconds:.1f} s per stream; cpus: {os.cpu_count()}")
        for backend in args.backends:
            engine.preload(backend)
            for count in args.streams:
                load_before = uptime()
                result = asyncio.run(run_streams(engine, backend, pcm, count, tmp))
                print(f"\n{backend} x{count}  (before: {load_before})")
                print("  " + "  ".join(f"{k}={v:.3g}" for k, v in result.items()))
                print(f"  after: {uptime()}")
        engine.close()


if __name__ == "__main__":
    main()
