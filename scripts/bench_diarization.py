"""Diarization figures: DER against references and the stage's real-time factor and memory.

Run through ``scripts/bench.py --diarization`` (``--record`` also rewrites
``tests/quality/der_baseline.json``, which the CI guard compares with). For each scored recording
(tests/quality/test_der.py's set: the annotated recordings, then the assembled conversations of
tests/fixtures/conversation_sets.py, tuning set and held-out set apart) it runs the ``embedded``
backend, loaded once and warmed up, and prints DER (0.25 s collar each side, overlap scored)
with its missed / false-alarm / confusion parts, speakers found and the stage's real-time factor
(seconds of processing per second of audio, median of ``runs``); then each set's mean DER and
right counts, and the process's peak RSS. Then the ``channels`` backend on the two recordings
with one speaker per channel (tests/fixtures/channel_references.py). It asserts nothing.

The whole-task figure (``diarize=true`` against ``false`` through the service) is measured by
``scripts/bench.py`` after these (:func:`bench.run_whole_task`): it needs a Redis, an API and a worker.
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
from maie.pipeline.diarization.channels import ChannelsBackend, ChannelsOptions
from maie.pipeline.diarization.embedded import EmbeddedBackend, EmbeddedOptions
from tests.fixtures.channel_references import CHANNEL_RECORDINGS, reference
from tests.fixtures.conversation_sets import HELD_OUT, TUNING
from tests.fixtures.conversations import assemble, decode_16k
from tests.fixtures.diarization import BASELINE_FILE, der_parts
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


def run(runs: int, *, record: bool) -> None:
    """Measure and print; with ``record`` write the DER baseline the CI guard reads."""
    rss_before = _rss_mib()
    with tempfile.TemporaryDirectory(prefix="maie-bench-diar-") as tmp:
        work = Path(tmp)
        settings = Settings.from_env({"MAIE_DATA_DIR": str(work / "data")}, env_file=None)
        cases: dict[str, tuple[str, Path, Any]] = {
            name: ("annotated", AUDIO_DIR / audio, read_rttm((AUDIO_DIR / rttm).read_text(encoding="utf-8")))
            for name, (audio, rttm) in ANNOTATED.items()
        }
        for group, conversations in (("tuning", TUNING), ("held-out", HELD_OUT)):
            for conversation in conversations:
                upload, reference = assemble(conversation, work)
                wav = work / f"{conversation.name}.wav"
                decode_16k(upload, wav)
                cases[conversation.name] = (group, wav, reference)
        started = time.perf_counter()
        backend = EmbeddedBackend(EmbeddedOptions.from_settings(settings))
        backend.load()
        load_s = time.perf_counter() - started
        figures: dict[str, dict[str, Any]] = {}
        rows: list[tuple[str, float, bool, float]] = []
        print(f"embedded backend, cpus: {os.cpu_count()}, load {load_s:.2f} s, median of {runs} warm runs")
        print(
            f"{'set':<9} {'recording':<32} {'audio s':>7} {'DER':>6} {'miss':>5} {'fa':>5} {'conf':>5} "
            f"{'target':>6} {'speakers':>8} {'RTF':>7}"
        )
        backend.process(DiarizationInput(wav_path=cases["sample"][1]))  # warm-up (VAD model, caches)
        for name, (group, wav, reference) in cases.items():
            times, artifact = [], None
            for _ in range(runs):
                t0 = time.perf_counter()
                artifact = backend.process(DiarizationInput(wav_path=wav))
                times.append(time.perf_counter() - t0)
            assert artifact is not None  # noqa: S101 - runs >= 1
            rtf = statistics.median(times) / artifact.duration_s
            parts = der_parts(reference, artifact.turns)
            truth = len({t.speaker for t in reference})
            target = TARGETS.get(name, DEFAULT_TARGET)
            figures[name] = {
                "der": round(parts.der, 4),
                "speakers": artifact.num_speakers,
                "reference_speakers": truth,
            }
            rows.append((group, parts.der, artifact.num_speakers == truth, rtf))
            print(
                f"{group:<9} {name:<32} {artifact.duration_s:>7.1f} {parts.der:>6.3f} {parts.missed:>5.3f} "
                f"{parts.false_alarm:>5.3f} {parts.confusion:>5.3f} {target:>6.2f} "
                f"{artifact.num_speakers:>3} of {truth:<2} {rtf:>7.4f}"
            )
        backend.unload()
    for group in dict.fromkeys(row[0] for row in rows):
        mine = [row for row in rows if row[0] == group]
        scores = [r[1] for r in mine]
        print(
            f"{group}: mean DER {statistics.mean(scores):.3f}, worst {max(scores):.3f}, "
            f"right count {sum(r[2] for r in mine)} of {len(mine)}, "
            f"RTF median {statistics.median(r[3] for r in mine):.4f}"
        )
    print(f"peak RSS: {_rss_mib():.0f} MiB (before loading: {rss_before:.0f} MiB)")
    channel_figures = run_channels(runs)
    if record:
        recorded = {"collar_s_each_side": 0.25, "skip_overlap": False, "embedded": figures}
        recorded["channels"] = channel_figures
        BASELINE_FILE.write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")
        print(f"recorded {BASELINE_FILE}")


def run_channels(runs: int) -> dict[str, dict[str, Any]]:
    """DER of the ``channels`` backend on the per-channel recordings; their figures."""
    figures: dict[str, dict[str, Any]] = {}
    print("channels backend")
    with ChannelsBackend(ChannelsOptions()) as backend:
        for name, audio in CHANNEL_RECORDINGS.items():
            path = AUDIO_DIR / audio
            times, artifact = [], None
            for _ in range(runs):
                t0 = time.perf_counter()
                artifact = backend.process(DiarizationInput(wav_path=path, source_path=path))
                times.append(time.perf_counter() - t0)
            assert artifact is not None  # noqa: S101 - runs >= 1
            truth = reference(name)
            parts = der_parts(truth, artifact.turns)
            speakers = len({t.speaker for t in truth})
            figures[name] = {
                "der": round(parts.der, 4),
                "speakers": artifact.num_speakers,
                "reference_speakers": speakers,
            }
            rtf = statistics.median(times) / artifact.duration_s
            print(
                f"{'channels':<9} {name:<32} {artifact.duration_s:>7.1f} {parts.der:>6.3f} "
                f"{parts.missed:>5.3f} {parts.false_alarm:>5.3f} {parts.confusion:>5.3f} "
                f"{DEFAULT_TARGET:>6.2f} {artifact.num_speakers:>3} of {speakers:<2} {rtf:>7.4f}"
            )
    return figures
