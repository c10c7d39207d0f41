"""Speech regions from the Silero VAD model that faster-whisper ships (run by onnxruntime).

faster-whisper is a core dependency, so this costs no install. Its ``get_speech_timestamps``
is the Silero recipe (speech probability every 32 ms, hysteresis, padding), which the diarizer
asks for tight regions: short pauses split turns, and little padding keeps one speaker's region
from swallowing the start of the next one's.
"""

from __future__ import annotations

import msgspec
import numpy as np

__all__ = ["SpeechRegion", "VadParams", "speech_regions"]


class VadParams(msgspec.Struct, frozen=True, kw_only=True):
    """How speech regions are found; every field is recorded in the diarization version."""

    #: Speech probability above which a 32 ms frame is speech.
    threshold: float = 0.5
    #: Speech runs shorter than this are dropped, in milliseconds.
    min_speech_ms: int = 200
    #: A pause this long ends a region, in milliseconds.
    min_silence_ms: int = 300
    #: Padding kept around each region, in milliseconds: Silero fades out before quiet word
    #: endings; 100 ms more recall costs little, a turn edge is rarely that close to the next.
    speech_pad_ms: int = 100


class SpeechRegion(msgspec.Struct, frozen=True):
    """One region of speech, in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


def speech_regions(wav: np.ndarray, params: VadParams, sample_rate: int = 16000) -> list[SpeechRegion]:
    """Regions of speech in 16 kHz float samples, in order, not overlapping.

    Raises:
        RuntimeError: if faster-whisper or its VAD model cannot be loaded.
    """
    if len(wav) == 0:
        return []
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # noqa: PLC0415 - loads onnxruntime

    options = VadOptions(
        threshold=params.threshold,
        min_speech_duration_ms=params.min_speech_ms,
        min_silence_duration_ms=params.min_silence_ms,
        speech_pad_ms=params.speech_pad_ms,
    )
    stamps = get_speech_timestamps(np.ascontiguousarray(wav, np.float32), options, sampling_rate=sample_rate)
    duration = len(wav) / sample_rate
    return [
        SpeechRegion(max(0.0, s["start"] / sample_rate), min(duration, s["end"] / sample_rate))
        for s in stamps
        if s["end"] > s["start"]
    ]
