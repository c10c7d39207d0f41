"""Diarization figures: DER against references and the stage's real-time factor and memory.

Run through ``scripts/bench.py --diarization`` (``--record`` also rewrites
``tests/quality/der_baseline.json``, which the CI guard compares with). For each scored recording
(tests/quality/test_der.py's set) it runs the ``embedded`` backend, loaded once and warmed up, and
prints DER (0.25 s collar each side, overlap scored), speakers found and the stage's real-time
factor (seconds of processing per second of audio, median of ``runs``); then the process's peak
RSS. It asserts nothing.

The whole-task figure (``diarize=true`` against ``false`` through the service) needs the worker
stage, which phase 2 adds: :func:`whole_task_ratio` is the hook it fills in.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from maie.config import Settings
from maie.pipeline.diarization import DiarizationInput, read_rttm
from maie.pipeline.diarization.embedded import EmbeddedBackend, EmbeddedOptions
from tests.fixtures.conversations import CONVERSATIONS, assemble, decode_16k
from tests.fixtures.diarization import BASELINE_FILE, der
from tests.fixtures.paths import AUDIO_DIR

ANNOTATED = {
    "ami_mixture_4spk": ("pyannote/ami_mixture_4spk.wav", "pyannote/ami_mixture_4spk.rttm"),
    "sample": ("pyannote/sample.wav", "pyannote/sample.rttm"),
}
#: Targets of the embedded backend (issue: DER <= 0.25 on AMI, <= 0.10 elsewhere).
TARGETS = {"ami_mixture_4spk": 0.25}
DEFAULT_TARGET = 0.10


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def whole_task_ratio() -> str:
    """Hook for phase 2: end-to-end seconds with ``diarize=true`` over ``false`` via the service."""
    return "not measured: the service has no diarization stage yet (the worker wires it in phase 2)"


def run(runs: int, *, record: bool) -> None:
    """Measure and print; with ``record`` write the DER baseline the CI guard reads."""
    rss_before = _rss_mib()
    with tempfile.TemporaryDirectory(prefix="maie-bench-diar-") as tmp:
        work = Path(tmp)
        settings = Settings.from_env({"MAIE_DATA_DIR": str(work / "data")}, env_file=None)
        cases: dict[str, tuple[Path, Any]] = {
            name: (AUDIO_DIR / audio, read_rttm((AUDIO_DIR / rttm).read_text(encoding="utf-8")))
            for name, (audio, rttm) in ANNOTATED.items()
        }
        for conversation in CONVERSATIONS:
            upload, reference = assemble(conversation, work)
            wav = work / f"{conversation.name}.wav"
            decode_16k(upload, wav)
            cases[conversation.name] = (wav, reference)
        started = time.perf_counter()
        backend = EmbeddedBackend(EmbeddedOptions.from_settings(settings))
        backend.load()
        load_s = time.perf_counter() - started
        figures: dict[str, dict[str, Any]] = {}
        print(f"embedded backend, cpus: {os.cpu_count()}, load {load_s:.2f} s, median of {runs} warm runs")
        print(f"{'recording':<20} {'audio s':>8} {'DER':>6} {'target':>6} {'speakers':>9} {'RTF':>7}")
        backend.process(DiarizationInput(wav_path=cases["sample"][0]))  # warm-up (VAD model, caches)
        for name, (wav, reference) in cases.items():
            times, artifact = [], None
            for _ in range(runs):
                t0 = time.perf_counter()
                artifact = backend.process(DiarizationInput(wav_path=wav))
                times.append(time.perf_counter() - t0)
            assert artifact is not None  # noqa: S101 - runs >= 1
            rtf = statistics.median(times) / artifact.duration_s
            score = der(reference, artifact.turns)
            truth = len({t.speaker for t in reference})
            target = TARGETS.get(name, DEFAULT_TARGET)
            figures[name] = {
                "der": round(score, 4),
                "speakers": artifact.num_speakers,
                "reference_speakers": truth,
            }
            print(
                f"{name:<20} {artifact.duration_s:>8.1f} {score:>6.3f} {target:>6.2f} "
                f"{artifact.num_speakers:>4} of {truth:<2} {rtf:>7.4f}"
            )
        backend.unload()
    print(f"peak RSS: {_rss_mib():.0f} MiB (before loading: {rss_before:.0f} MiB)")
    print(f"whole task diarize=true / false: {whole_task_ratio()}")
    if record:
        BASELINE_FILE.write_text(
            json.dumps({"collar_s_each_side": 0.25, "skip_overlap": False, "embedded": figures}, indent=2)
            + "\n",
            encoding="utf-8",
        )
        print(f"recorded {BASELINE_FILE}")
