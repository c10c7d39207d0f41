"""Benchmark: what decoding uploads in the sandbox costs, against decoding in-process.

For each file, in the same run on the same machine:

1. ``probe`` (what the API runs on every upload) in-process and in the decode sandbox;
2. ``convert`` (the worker's preprocess: decode, resample, write a 16 kHz WAV) in both;
3. the smallest address-space limit (MAIE_DECODE_MEMORY_LIMIT_MB, in 32 MiB steps) under which
   the sandboxed ``convert`` still succeeds, which is what the default limit must leave room for.

It prints medians and the sandbox/in-process ratio; it asserts nothing. Without file arguments it
uses clips from ../shared/audio and writes a 30-minute 44.1 kHz stereo FLAC to a temporary folder.

    uv run python scripts/bench_decode.py
    uv run python scripts/bench_decode.py --repeat 50 ../shared/audio/jfk.flac
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from collections.abc import Callable

    from maie.pipeline.preprocess import PreprocessOptions

# Everything else is imported inside the functions: each sandboxed child re-runs this script as
# its main module (it was started by path, not with -m), and a service started as `python -m
# maie` or `maie` pays nothing like that, so the script must stay cheap to re-run.
SHARED = ROOT.parent / "shared" / "audio"
CLIPS = ("jfk.flac", "hotwords.mp3", "multilingual_en_de.mp3")


def options() -> PreprocessOptions:
    """The accepted durations of the measured runs."""
    from maie.pipeline.preprocess import PreprocessOptions

    return PreprocessOptions(min_duration_s=0.1, max_duration_s=14400.0)


def long_flac(folder: Path, minutes: int = 30) -> Path:
    """A ``minutes``-long 44.1 kHz stereo FLAC of a quiet noise (so it does not compress to nothing)."""
    import av
    import numpy as np

    path = folder / f"long_{minutes}min.flac"
    rate, block = 44100, 44100
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=rate, layout="stereo")
        for second in range(minutes * 60):
            samples = (rng.standard_normal((1, block * 2)) * 300).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
            frame.sample_rate = rate
            frame.pts = second * block
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def smallest_memory_limit(source: Path, target: Path) -> int | None:
    """Smallest MiB limit (32 MiB steps) under which the sandboxed convert succeeds, if any up to 4 GiB."""
    from maie.errors import DecodeLimitError
    from maie.pipeline.preprocess import PreprocessInput, convert
    from maie.pipeline.sandbox import DecodeSandbox, SandboxLimits

    low, high = 1, 128  # in units of 32 MiB
    job = functools.partial(convert, options(), PreprocessInput(source=source, target=target))

    def works(units: int) -> bool:
        try:
            DecodeSandbox(SandboxLimits(time_s=600, memory_mb=units * 32)).run(job)
        except (DecodeLimitError, MemoryError):
            return False
        return True

    if not works(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if works(middle):
            high = middle
        else:
            low = middle + 1
    return high * 32


def main() -> None:
    """Measure and print."""
    from maie.pipeline.preprocess import PreprocessInput, convert, probe
    from maie.pipeline.sandbox import DecodeSandbox, SandboxLimits

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=20, help="timed runs of each probe (default: %(default)s)")
    ap.add_argument("--convert-repeat", type=int, default=3, help="timed runs of each convert")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = args.files or [SHARED / c for c in CLIPS if (SHARED / c).is_file()] + [long_flac(folder)]
        sandbox = DecodeSandbox(SandboxLimits(time_s=600, memory_mb=1024))
        started = time.perf_counter()
        sandbox.start()
        print(f"forkserver start (once per process): {(time.perf_counter() - started) * 1000:.0f} ms")
        header = (
            f"{'file':28} {'audio s':>8} | {'probe ms':>9} {'sandboxed':>9} {'+ms':>6} | "
            f"{'convert ms':>10} {'sandboxed':>9} {'ratio':>6} | {'min MiB':>7}"
        )
        print(header)
        print("-" * len(header))
        for source in files:
            target = folder / f"{source.stem}.wav"
            info = probe(source)
            job = functools.partial(probe, source, max_duration_s=options().max_duration_s)
            probe_in = median_ms(job, args.repeat)
            probe_box = median_ms(functools.partial(sandbox.run, job), args.repeat)
            work = functools.partial(convert, options(), PreprocessInput(source=source, target=target))
            convert_in = median_ms(work, args.convert_repeat)
            convert_box = median_ms(functools.partial(sandbox.run, work), args.convert_repeat)
            print(
                f"{source.name[:28]:28} {info.duration_s:8.1f} | {probe_in:9.1f} {probe_box:9.1f} "
                f"{probe_box - probe_in:6.1f} | {convert_in:10.1f} {convert_box:9.1f} "
                f"{convert_box / convert_in:6.2f} | {smallest_memory_limit(source, target) or '>4096':>7}"
            )


if __name__ == "__main__":
    main()
