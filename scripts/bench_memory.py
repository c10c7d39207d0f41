"""Benchmark: peak memory of preprocess and ASR against the length of the recording.

For each duration (default 10 min, 1 h and 4 h) it writes a low-bitrate recording (MP3, 8 kHz mono,
8 kbit/s, a faint noise: 4 h fit in 14 MB, well under the upload limit), then runs, each in a
fresh process so that one measurement cannot inherit another's heap:

1. ``preprocess``: the worker's preprocess stage (decode, resample, write the 16 kHz WAV);
2. ``whisper``: the Whisper backend with the tiny random test model (built here) on that WAV,
   with the service's defaults: VAD on and the language detected;
3. ``pocketsphinx``: the PocketSphinx backend on that WAV.

Each child (tests/fixtures/peak_memory.py) loads what it needs, resets its peak-RSS counter
(``/proc/self/clear_refs``), runs the stage once and reports its resident memory before and its
peak (``VmHWM``) during the stage. The
growth per hour of audio is the slope between the shortest and the longest duration: what a worker
must budget per hour of the longest recording it accepts (MAIE_MAX_DURATION_S). It asserts nothing.

    uv run python scripts/bench_memory.py
    uv run python scripts/bench_memory.py --minutes 10,60 --stages whisper
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("preprocess", "whisper", "pocketsphinx")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", default="10,60,240", help="durations to measure (default: %(default)s)")
    ap.add_argument("--stages", default=",".join(STAGES), help="stages to measure (default: %(default)s)")
    ap.add_argument(
        "--sound",
        choices=["quiet", "babble"],
        default="quiet",
        help="quiet: a faint noise (VAD finds no speech); babble: loud noise pulsing at syllable rate, "
        "with no pause, which VADs take for one endless utterance (default: %(default)s)",
    )
    ap.add_argument("--window-s", type=int, help="MAIE_ASR_WINDOW_S of the ASR stages (default: MAIE's)")
    ap.add_argument(
        "--work", type=Path, help="folder for the recordings and the model (default: a temporary one)"
    )
    return ap.parse_args()


def write_recording(path: Path, minutes: int, sound: str) -> None:
    """A ``minutes``-long 8 kHz mono MP3 at 8 kbit/s of ``sound`` (see ``--sound``)."""
    import av
    import numpy as np

    rate = 8000
    noise = np.random.default_rng(0).standard_normal(rate)
    if sound == "babble":
        pulse = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * np.arange(rate) / rate)  # four "syllables" a second
        noise = (noise * 4000 * pulse).astype(np.int16).reshape(1, -1)
    else:
        noise = (noise * 20).astype(np.int16).reshape(1, -1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = 8000
        for _ in range(minutes * 60):
            frame = av.AudioFrame.from_ndarray(noise, format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def stage_env(work: Path, model: Path, window_s: int | None) -> dict[str, str]:
    """MAIE_* of the measured stages: the service's defaults, with the tiny model decoding fast."""
    env = {
        "MAIE_DATA_DIR": str(work),
        "MAIE_MAX_DURATION_S": "14400",
        "MAIE_WHISPER_MODEL": str(model),
        "MAIE_WHISPER_CPU_THREADS": "1",
        "MAIE_WHISPER_BEAM_SIZE": "1",
        "MAIE_WHISPER_MAX_NEW_TOKENS": "16",
    }
    if window_s:
        env["MAIE_ASR_WINDOW_S"] = str(window_s)
    return env


def main() -> None:
    """Measure every stage at every duration and print the growth per hour of audio."""
    from tests.fixtures.peak_memory import measure

    args = parse_args()
    minutes = [int(m) for m in args.minutes.split(",")]
    stages = [s for s in args.stages.split(",") if s]
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        model = work / "tiny-whisper"
        if "whisper" in stages and not model.exists():
            from tests.fixtures.paths import TOKENIZER_DIR
            from tests.fixtures.whisper_model import build_tiny_whisper

            build_tiny_whisper(model, TOKENIZER_DIR / "whisper-tiny" / "tokenizer.json")
        env = stage_env(work, model, args.window_s)
        window = args.window_s or "default"
        print(f"cpus: {os.cpu_count()}  python: {sys.version.split()[0]}  window: {window}", end="")
        print(f"  sound: {args.sound}")
        print(f"{'stage':<13}{'audio':>8}{'before MiB':>12}{'peak MiB':>10}{'growth MiB':>12}{'seconds':>9}")
        growth: dict[str, dict[int, float]] = {s: {} for s in stages}
        for length in minutes:
            upload, wav = work / f"{args.sound}_{length}min.mp3", work / f"{args.sound}_{length}min.wav"
            if not upload.exists():
                write_recording(upload, length, args.sound)
            for stage in stages:
                if stage != "preprocess" and not wav.exists():
                    measure("preprocess", upload, wav, env=env)
                if stage == "preprocess":
                    report = measure("preprocess", upload, work / "scratch.wav", env=env)
                else:
                    report = measure(stage, wav, env=env)
                grown = report["peak_mib"] - report["before_mib"]
                growth[stage][length] = grown
                print(
                    f"{stage:<13}{f'{length} min':>8}{report['before_mib']:>12.0f}{report['peak_mib']:>10.0f}"
                    f"{grown:>12.0f}{report['seconds']:>9.1f}"
                )
        if len(minutes) > 1:
            short, long_ = min(minutes), max(minutes)
            print(f"\ngrowth per hour of audio (slope from {short} to {long_} min):")
            for stage in stages:
                slope = (growth[stage][long_] - growth[stage][short]) / ((long_ - short) / 60)
                print(f"  {stage:<13}{slope:>8.0f} MiB/h")


if __name__ == "__main__":
    main()
