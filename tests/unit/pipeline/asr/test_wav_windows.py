"""The preprocessed WAV read in windows: coverage, quiet cuts, exact samples, refused formats."""

from __future__ import annotations

import wave
from typing import TYPE_CHECKING

import numpy as np
import pytest

from maie.errors import PermanentError
from maie.pipeline.asr.wav_windows import MIN_TAIL_S, SAMPLE_RATE, WavWindows

if TYPE_CHECKING:
    from pathlib import Path


def _wav(path: Path, samples: np.ndarray, *, rate: int = SAMPLE_RATE, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return path


def _noise(seconds: float, level: float = 3000.0, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)) * level).astype(np.int16)


class TestWindows:
    def test_windows_cover_the_file_in_order(self, tmp_path):
        samples = _noise(400)
        with WavWindows(_wav(tmp_path / "a.wav", samples), window_s=60) as audio:
            assert audio.size == samples.size
            windows = list(audio.windows())
        position = 0
        for start, window in windows:
            assert start == position, "contiguous: no sample lost, none read twice"
            assert window.size <= (60 + MIN_TAIL_S) * SAMPLE_RATE
            position += window.size
        assert position == samples.size
        joined = np.concatenate([w for _, w in windows])
        np.testing.assert_array_equal(joined, samples.astype(np.float32) / 32768)

    def test_cut_falls_in_the_pause(self, tmp_path):
        """A half-second pause 50 s in, inside the last 20 s of a 60 s window: the cut lands in it."""
        samples = _noise(200)
        samples[50 * SAMPLE_RATE : int(50.5 * SAMPLE_RATE)] = 0
        with WavWindows(_wav(tmp_path / "b.wav", samples), window_s=60) as audio:
            (_, first), (second_start, _), *_ = audio.windows()
        assert 50 * SAMPLE_RATE <= second_start <= 50.5 * SAMPLE_RATE
        assert first.size == second_start

    def test_short_remainder_joins_the_last_window(self, tmp_path):
        with WavWindows(_wav(tmp_path / "c.wav", _noise(80)), window_s=60) as audio:
            windows = list(audio.windows())
        assert len(windows) == 1, "80 s is one window of 60 s plus a tail under MIN_TAIL_S"

    def test_empty_file_has_no_window(self, tmp_path):
        with WavWindows(_wav(tmp_path / "d.wav", np.zeros(0, np.int16)), window_s=60) as audio:
            assert list(audio.windows()) == []
            assert audio.read(0, 10).size == 0

    def test_read_any_range(self, tmp_path):
        samples = _noise(5)
        with WavWindows(_wav(tmp_path / "e.wav", samples), window_s=60) as audio:
            part = audio.read(1000, 2000)
            beyond = audio.read(samples.size - 10, samples.size + 1000)
        np.testing.assert_array_equal(part, samples[1000:2000] / np.float32(32768))
        assert beyond.size == 10


class TestRefused:
    def test_missing(self, tmp_path):
        with pytest.raises(PermanentError, match="missing"), WavWindows(tmp_path / "none.wav", window_s=60):
            pass

    def test_not_the_preprocessed_format(self, tmp_path):
        path = _wav(tmp_path / "stereo.wav", _noise(1), rate=8000)
        with pytest.raises(PermanentError, match="16 kHz mono 16-bit"), WavWindows(path, window_s=60):
            pass

    def test_not_a_wav(self, tmp_path):
        path = tmp_path / "text.wav"
        path.write_text("not audio")
        with pytest.raises(PermanentError, match="readable WAV"), WavWindows(path, window_s=60):
            pass
