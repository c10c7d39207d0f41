"""Helpers of the live-transcription tests: settings, clips as PCM at any rate, a driven session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pytest

from maie.config import Settings
from maie.pipeline.streaming import FinalEvent, PartialEvent
from tests.fixtures.paths import shared_audio
from tests.fixtures.wer import run_ffmpeg

if TYPE_CHECKING:
    from maie.pipeline.streaming import StreamEvent, StreamSession

#: Frames of 20 ms, what browsers and telephony send.
FRAME_S = 0.02


def settings_for(tmp_path, **env) -> Settings:
    return Settings.from_env({"MAIE_DATA_DIR": str(tmp_path), **env}, env_file=None)


def tiny_whisper_env(model_dir) -> dict[str, str]:
    """MAIE_WHISPER_* for the tiny random model, decoding fast (see tests/fixtures/whisper_model.py)."""
    return {
        "MAIE_WHISPER_MODEL": str(model_dir),
        "MAIE_WHISPER_DEVICE": "cpu",
        "MAIE_WHISPER_BEAM_SIZE": "1",
        "MAIE_WHISPER_TEMPERATURE": "0.0",
        "MAIE_WHISPER_MAX_NEW_TOKENS": "20",
        "MAIE_WHISPER_CPU_THREADS": "1",
        "MAIE_WHISPER_LANGUAGE": "en",
    }


def pcm_at(name: str, rate: int) -> np.ndarray:
    """A shared clip as mono 16-bit PCM at ``rate``, converted by the reference FFmpeg."""
    raw = run_ffmpeg("-i", str(shared_audio(name)), "-ac", "1", "-ar", str(rate), "-f", "s16le", "-")
    return np.frombuffer(raw, dtype="<i2")


def write_wav(path, pcm: np.ndarray, rate: int):
    import wave

    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return path


@dataclass
class Run:
    """What a session said while a clip was streamed: events with the audio time they came at."""

    events: list[tuple[float, StreamEvent]] = field(default_factory=list)

    @property
    def partials(self) -> list[tuple[float, PartialEvent]]:
        return [(at, e) for at, e in self.events if isinstance(e, PartialEvent)]

    @property
    def finals(self) -> list[tuple[float, FinalEvent]]:
        return [(at, e) for at, e in self.events if isinstance(e, FinalEvent)]

    @property
    def text(self) -> str:
        return " ".join(e.segment.text for _, e in self.finals if e.segment.text)


def stream(session: StreamSession, pcm: np.ndarray, rate: int, *, frame_s: float = FRAME_S) -> Run:
    """Push ``pcm`` frame by frame as fast as it goes (no pacing), polling after each frame."""
    run = Run()
    step = round(rate * frame_s)
    for offset in range(0, pcm.size, step):
        session.push(pcm[offset : offset + step].tobytes())
        run.events += [(min(offset + step, pcm.size) / rate, e) for e in session.poll()]
    run.events += [(pcm.size / rate, e) for e in session.finish()]
    return run


@pytest.fixture
def recording(tmp_path):
    return tmp_path / "session.wav"
