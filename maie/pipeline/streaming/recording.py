"""The session's audio, kept as a 16 kHz mono 16-bit WAV while it arrives.

Everything received is written before it is transcribed, so a session that overflows, runs too
long or loses its connection still leaves the whole recording, ready to be stored as an ordinary
task (it is already in the shape preprocessing produces). Python's ``wave`` rewrites the header
lengths after every write, so the file is a valid WAV at every moment, not only once closed.
"""

from __future__ import annotations

import wave
from typing import TYPE_CHECKING

import numpy as np

from maie.pipeline.streaming.options import SAMPLE_RATE

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["WavRecording", "read_samples"]


class WavRecording:
    """A WAV file that grows with the session. Used from one thread (the one that pushes audio).

    Args:
        path: Where to write; the folder must exist. An existing file is replaced.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wav: wave.Wave_write | None = wave.open(str(path), "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        #: Samples written so far.
        self.samples = 0

    @property
    def duration_s(self) -> float:
        """Seconds written so far."""
        return self.samples / SAMPLE_RATE

    def write(self, samples: np.ndarray) -> None:
        """Append int16 samples."""
        if self._wav is None:
            msg = "the recording is closed"
            raise RuntimeError(msg)
        if samples.size:
            self._wav.writeframes(samples.astype("<i2", copy=False).tobytes())
            self.samples += samples.size

    def close(self) -> None:
        """Finish the file. Safe to call twice."""
        if self._wav is not None:
            wav, self._wav = self._wav, None
            wav.close()


def read_samples(path: Path) -> np.ndarray:
    """The int16 samples of a recording (for checks and tools)."""
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
