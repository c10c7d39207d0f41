"""The preprocessed WAV read in windows of a few minutes, so ASR memory does not grow with its length.

faster-whisper given a path decodes the whole file into one float32 array (``decode_audio``, with
several transient copies), runs Silero VAD over all of it and computes the log-mel features of all
of it at once: about 0.7 GB per hour of audio at its peak, 2.7 GB for the 4-hour maximum. Read in
windows of ``window_s`` seconds (``MAIE_ASR_WINDOW_S``), the peak is that of one window whatever
the length of the recording.

A window does not end at a fixed sample: it ends at the quietest 100 ms (lowest energy) in its last
:data:`SEARCH_S` seconds, most often a pause between words, and the next window starts there. A
remainder shorter than :data:`MIN_TAIL_S` joins the last window instead of becoming one of its own.
"""

from __future__ import annotations

import wave
from typing import TYPE_CHECKING, Final, Self

import numpy as np

from maie.errors import PermanentError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import TracebackType

    import numpy.typing as npt

__all__ = ["MIN_TAIL_S", "SAMPLE_RATE", "SEARCH_S", "WavWindows"]

#: Sample rate of the preprocessed WAV.
SAMPLE_RATE: Final = 16000
#: Seconds at the end of a window searched for the quietest place to cut.
SEARCH_S: Final = 20.0
#: A remainder shorter than this (seconds) is added to the last window.
MIN_TAIL_S: Final = 30.0
#: Length of the frames whose energy decides the cut (100 ms).
_FRAME: Final = SAMPLE_RATE // 10
_SCALE: Final = 1 / 32768.0  # int16 to [-1, 1), as faster-whisper's own decode_audio


class WavWindows:
    """A 16 kHz mono 16-bit WAV as float32 samples: windows in order, or any range.

    Use it as a context manager; it holds the file open, never the samples.

    Args:
        path: The preprocessed WAV.
        window_s: Longest window, in seconds (a window may reach ``window_s + MIN_TAIL_S`` at the end).
    """

    def __init__(self, path: Path, *, window_s: float) -> None:
        self.path = path
        self.window = int(window_s * SAMPLE_RATE)
        self._wav: wave.Wave_read | None = None
        #: Length in samples.
        self.size = 0

    def __enter__(self) -> Self:
        """Open the WAV and check its format.

        Raises:
            PermanentError: if it is missing, unreadable or not 16 kHz mono 16-bit.
        """
        if not self.path.is_file():
            raise PermanentError(f"preprocessed audio {self.path} is missing")
        try:
            wav = wave.open(str(self.path), "rb")  # closed in __exit__
        except (wave.Error, EOFError) as exc:
            raise PermanentError(f"preprocessed audio {self.path} is not a readable WAV ({exc})") from exc
        shape = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
        if shape != (SAMPLE_RATE, 1, 2):
            wav.close()
            raise PermanentError(
                f"preprocessed audio must be 16 kHz mono 16-bit, got {shape} (rate, channels, bytes)"
            )
        self._wav, self.size = wav, wav.getnframes()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.size / SAMPLE_RATE

    def read(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        """Samples ``start`` to ``stop`` (clipped to the file) as float32 in [-1, 1)."""
        if self._wav is None:
            msg = "WavWindows.read() outside its with block"
            raise RuntimeError(msg)
        start, stop = max(0, start), min(stop, self.size)
        if stop <= start:
            return np.zeros(0, np.float32)
        self._wav.setpos(start)
        pcm = np.frombuffer(self._wav.readframes(stop - start), dtype="<i2")
        samples = pcm.astype(np.float32)
        samples *= _SCALE
        return samples

    def windows(self) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """``(first sample, samples)`` of each window, in order, covering the whole file."""
        start = 0
        while start < self.size:
            end = start + self.window
            if end + MIN_TAIL_S * SAMPLE_RATE >= self.size:
                yield start, self.read(start, self.size)
                return
            samples = self.read(start, end)
            cut = _quietest_cut(samples, search=int(SEARCH_S * SAMPLE_RATE))
            yield start, samples[:cut]
            del samples
            start += cut


def _quietest_cut(samples: npt.NDArray[np.float32], *, search: int) -> int:
    """Index, in the last ``search`` samples, of the middle of the quietest 100 ms frame."""
    first = max(_FRAME, samples.size - search)
    tail = samples[first : first + (samples.size - first) // _FRAME * _FRAME]
    if tail.size == 0:
        return samples.size
    energy = np.square(tail.reshape(-1, _FRAME), dtype=np.float32).sum(axis=1)
    quietest = int(np.argmin(energy[::-1]))  # the latest of equally quiet frames
    frame = energy.size - 1 - quietest
    return int(first + frame * _FRAME + _FRAME // 2)
