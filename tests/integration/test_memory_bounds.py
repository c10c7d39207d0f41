"""Preprocess and ASR hold bounded memory for any length of audio: peak RSS of real stages, in children.

Each stage runs in a fresh process (tests/fixtures/peak_memory.py) on an hour of audio, and its peak
resident memory during the stage is compared with the size of that hour as float32 samples
(16 kHz: 220 MiB), what any implementation that holds the recording as one array needs at the very
least (faster-whisper's own path takes about four times that). Bounds, not timings.
"""

from __future__ import annotations

import itertools
import wave
from typing import TYPE_CHECKING

import numpy as np
import pytest

from tests.fixtures.peak_memory import measure

if TYPE_CHECKING:
    from pathlib import Path

#: Sample rate of the preprocessed WAV.
SAMPLE_RATE = 16000
#: Length of the long recording, in seconds.
HOUR_S = 3600
#: The recording as one float32 array, in MiB.
WHOLE_FLOAT32_MIB = HOUR_S * SAMPLE_RATE * 4 / 2**20


def _write_wav(path: Path, seconds: int, *, rate: int = SAMPLE_RATE, loud: bool = False) -> Path:
    """``seconds`` (whole minutes) of mono 16-bit WAV: a faint noise, or with ``loud`` a pulsing noise
    with no pause, like babble."""
    rng = np.random.default_rng(0)
    second = rng.standard_normal(rate)
    if loud:
        second *= 4000 * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * np.arange(rate) / rate))
    else:
        second *= 20
    block = np.tile(second.astype(np.int16), 60).tobytes()  # one minute
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        for _ in range(seconds // 60):
            wav.writeframes(block)
    return path


@pytest.fixture(scope="module")
def hour_wav(tmp_path_factory) -> Path:
    """One hour of the preprocessed format: 16 kHz mono 16-bit, a faint noise."""
    return _write_wav(tmp_path_factory.mktemp("long") / "hour.wav", HOUR_S)


@pytest.mark.slow
class TestPeakMemory:
    """An hour of audio never costs a stage an hour's worth of samples in memory."""

    def test_whisper_transcribes_an_hour_in_windows(self, hour_wav, tiny_whisper_dir, tmp_path):
        """Service defaults (VAD on, language detected) with 60 s windows; peak under the float32 hour."""
        env = {
            "MAIE_DATA_DIR": str(tmp_path),
            "MAIE_WHISPER_MODEL": str(tiny_whisper_dir),
            "MAIE_WHISPER_CPU_THREADS": "1",
            "MAIE_WHISPER_BEAM_SIZE": "1",
            "MAIE_WHISPER_MAX_NEW_TOKENS": "16",
            "MAIE_ASR_WINDOW_S": "60",
        }
        report = measure("whisper", hour_wav, env=env)
        growth = report["peak_mib"] - report["before_mib"]
        assert growth < WHOLE_FLOAT32_MIB, f"{growth:.0f} MiB for an hour of audio: is it held whole?"

    def test_preprocess_streams_an_hour(self, tmp_path):
        """Decode and resample 8 kHz to 16 kHz, an hour of it, in a few MiB."""
        source = _write_wav(tmp_path / "hour_8k.wav", HOUR_S, rate=8000)
        env = {"MAIE_DATA_DIR": str(tmp_path), "MAIE_MAX_DURATION_S": "14400"}
        report = measure("preprocess", source, tmp_path / "out.wav", env=env)
        growth = report["peak_mib"] - report["before_mib"]
        assert growth < WHOLE_FLOAT32_MIB / 4, f"{growth:.0f} MiB to convert an hour"


@pytest.mark.slow
class TestPocketsphinxUtterances:
    """Speech without a pause is decoded in bounded utterances, and the end of the file ends the last.

    PocketSphinx's own Segmenter held such speech whole until a pause that never came, and dropped
    it when the file ended on a whole number of VAD frames: two minutes of babble gave no segment.
    """

    def test_endless_speech_is_cut_and_its_end_kept(self, tmp_path):
        pytest.importorskip("pocketsphinx")
        from maie.config import Settings
        from maie.pipeline.asr import AsrInput
        from maie.pipeline.asr.pocketsphinx import create_pocketsphinx_backend

        seconds = 180
        path = _write_wav(tmp_path / "babble.wav", seconds, loud=True)  # a whole number of VAD frames
        backend = create_pocketsphinx_backend(
            Settings.from_env({"MAIE_DATA_DIR": str(tmp_path)}, env_file=None)
        )
        with backend:
            artifact = backend.process(AsrInput(wav_path=path, duration_s=seconds))
        segments = artifact.segments
        assert len(segments) >= 3, "three minutes of speech, at most a minute per utterance"
        assert all(s.end - s.start <= 60.5 for s in segments)
        assert segments[-1].end > seconds - 5, "speech that runs to the end of the file is kept"
        assert all(b.start >= a.end - 1e-6 for a, b in itertools.pairwise(segments))
