"""Spoken-language detection over several windows of speech spread across a recording.

What faster-whisper 1.2.1 does on its own (``WhisperModel.transcribe`` with ``language=None``):
it computes features of the audio (after VAD when ``vad_filter`` is on), takes the first
``language_detection_segments`` 30 s windows (default 1), and returns the language of the *first*
window whose top probability exceeds ``language_detection_threshold`` (default 0.5), falling back
to a majority vote only when no window is confident. So by default only the first 30 s count; with
VAD off a silent intro is all the model hears, and even with more windows a confidently wrong first
window (music, a jingle, a greeting in another language) wins.

MAIE detects the language itself, with the library's own pieces: Silero VAD (always, whatever
``vad_filter`` says) keeps speech only; up to :attr:`windows` 30 s windows are taken evenly spread
over that speech, start to end; ``WhisperModel.detect_language`` scores each window; and the
per-window probability distributions are averaged, weighted by the window's length. The language
with the highest mean probability wins and that mean is its probability. The language found is then
passed to ``transcribe`` explicitly, so sequential and batched decoding agree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import numpy.typing as npt

__all__ = [
    "SAMPLE_RATE",
    "WINDOW_SECONDS",
    "Detection",
    "LanguageDetector",
    "Samples",
    "spread",
    "whisper_detector",
]

#: Sample rate of the audio given to the detector.
SAMPLE_RATE = 16000
#: Length of one Whisper window, in seconds.
WINDOW_SECONDS = 30
#: Windows shorter than this many seconds of speech are not scored unless there is nothing else.
MIN_WINDOW_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Detection:
    """The detected language and how the windows voted."""

    #: ISO 639-1 code.
    language: str
    #: Mean probability of that language over the scored windows.
    probability: float
    #: Start of each scored window in the speech-only audio, in seconds.
    windows_s: tuple[float, ...]


def spread(count: int, picks: int) -> list[int]:
    """Indices of ``picks`` items spread evenly over ``count`` (first and last included).

    >>> spread(10, 3)
    [0, 4, 9]
    """
    if picks >= count:
        return list(range(count))
    if picks == 1:
        return [0]
    return sorted({round(i * (count - 1) / (picks - 1)) for i in range(picks)})


@dataclass(frozen=True, slots=True)
class LanguageDetector:
    """Detects the language of 16 kHz mono audio from speech windows across the whole recording."""

    #: Scores one window (e.g. ``WhisperModel.detect_language`` on that window's samples).
    score: Callable[[npt.NDArray[np.float32]], Sequence[tuple[str, float]]]
    #: Finds speech: samples → ``[{"start": sample, "end": sample}, ...]`` (Silero VAD).
    find_speech: Callable[[npt.NDArray[np.float32]], list[dict[str, int]]]
    #: Windows to score at most.
    windows: int = 3

    def detect(self, audio: npt.NDArray[np.float32] | Samples) -> Detection:
        """Detect the language of ``audio``: samples in memory, or a source read window by window.

        Speech is found window by window (VAD over one window at a time), and only the chosen 30 s
        of speech are read again, so a source never needs to be in memory whole. Without any speech
        found the whole audio is scored, so the answer is never empty.

        Raises:
            ValueError: if ``audio`` is empty.
        """
        source = _InMemory(audio) if isinstance(audio, np.ndarray) else audio
        if source.size == 0:
            msg = "cannot detect the language of empty audio"
            raise ValueError(msg)
        speech = [
            (offset + c["start"], offset + c["end"])
            for offset, samples in source.windows()
            for c in self.find_speech(samples)
            if c["end"] > c["start"]
        ] or [(0, source.size)]
        total = sum(end - start for start, end in speech)
        size = WINDOW_SECONDS * SAMPLE_RATE
        starts = list(range(0, total, size))
        # A short tail window says little: drop it when there are longer ones to score.
        if len(starts) > 1 and total - starts[-1] < MIN_WINDOW_SECONDS * SAMPLE_RATE:
            starts.pop()
        chosen = [starts[i] for i in spread(len(starts), self.windows)]
        totals: dict[str, float] = defaultdict(float)
        weight_sum = 0.0
        for start in chosen:
            window = _speech_window(source, speech, start, start + size)
            weight = window.size / size
            for language, probability in self.score(window):
                totals[language] += weight * float(probability)
            weight_sum += weight
        language = max(totals, key=totals.__getitem__)
        return Detection(
            language=language,
            probability=min(max(totals[language] / weight_sum, 0.0), 1.0),
            windows_s=tuple(start / SAMPLE_RATE for start in chosen),
        )


class Samples(Protocol):
    """Audio read in pieces (:class:`~maie.pipeline.asr.wav_windows.WavWindows` is one)."""

    #: Length in samples.
    size: int

    def windows(self) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """``(first sample, samples)`` of consecutive windows covering the audio."""
        ...

    def read(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        """Samples ``start`` to ``stop``."""
        ...


class _InMemory:
    """Samples already in memory: one window."""

    def __init__(self, audio: npt.NDArray[np.float32]) -> None:
        self.audio = audio
        self.size = int(audio.size)

    def windows(self) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        yield 0, self.audio

    def read(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        return self.audio[start:stop]


def _speech_window(
    source: Samples, speech: Sequence[tuple[int, int]], start: int, stop: int
) -> npt.NDArray[np.float32]:
    """Samples ``start`` to ``stop`` of the speech-only timeline (``speech`` regions put end to end)."""
    pieces = []
    position = 0  # where the current region starts on the speech-only timeline
    for begin, end in speech:
        length = end - begin
        low, high = max(start, position), min(stop, position + length)
        if low < high:
            pieces.append(source.read(begin + low - position, begin + high - position))
        position += length
        if position >= stop:
            break
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0] if pieces else np.zeros(0, np.float32)


def whisper_detector(model: Any, *, windows: int, vad_parameters: dict[str, Any]) -> LanguageDetector:  # noqa: ANN401 - faster-whisper is untyped
    """A detector scoring windows with a loaded ``faster_whisper.WhisperModel``.

    Args:
        model: The loaded model.
        windows: Windows to score at most.
        vad_parameters: Silero VAD options (``threshold``, ``min_speech_duration_ms``, ...).
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # noqa: PLC0415 - heavy

    vad = VadOptions(**vad_parameters)

    def score(window: npt.NDArray[np.float32]) -> list[tuple[str, float]]:
        _, _, probabilities = model.detect_language(audio=window, language_detection_segments=1)
        return [(str(language), float(p)) for language, p in probabilities]

    def find_speech(audio: npt.NDArray[np.float32]) -> list[dict[str, int]]:
        return list(get_speech_timestamps(audio, vad))

    return LanguageDetector(score=score, find_speech=find_speech, windows=windows)
