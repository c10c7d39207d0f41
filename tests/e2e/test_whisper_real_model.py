"""Whisper options on a real model: language detection past an intro, hotwords, word timestamps.

Random-weight models cannot show that these work, only that they run. Point ``E2E_WHISPER_MODEL``
at a local CTranslate2 Whisper folder (``tiny`` is enough; ``scripts/download_models.sh`` fetches
models) to run these; they are skipped otherwise. They run on the CPU as well as on a GPU.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest

from maie.pipeline.asr import AsrInput, WhisperBackend
from tests.fixtures.paths import shared_audio
from tests.fixtures.wer import wer_points
from tests.fixtures.whisper_model import fast_options

MODEL = os.environ.get("E2E_WHISPER_MODEL", "")

pytestmark = pytest.mark.skipif(
    not (MODEL and (Path(MODEL) / "model.bin").is_file()),
    reason="set E2E_WHISPER_MODEL to a local CTranslate2 Whisper folder to run real-model checks",
)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    loaded = WhisperBackend(
        fast_options(
            Path(MODEL),
            tmp_path_factory.mktemp("w"),
            beam_size=5,
            temperatures=(0.0, 0.2, 0.4),
            max_new_tokens=None,
            vad_filter=False,  # the intro reaches the decoder: only detection must not be fooled
        )
    )
    loaded.load()
    yield loaded
    loaded.unload()


def with_intro(tmp_path: Path, intro: np.ndarray) -> Path:
    """``intro`` (16 kHz float samples) followed by the JFK clip, as a 16 kHz mono WAV."""
    with wave.open(str(shared_audio("jfk_16k.wav"))) as source:
        speech = np.frombuffer(source.readframes(source.getnframes()), np.int16)
    path = tmp_path / "intro.wav"
    with wave.open(str(path), "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(16000)
        target.writeframes(np.concatenate([(intro * 32767).astype(np.int16), speech]).tobytes())
    return path


def jingle(seconds: float) -> np.ndarray:
    """A chord with vibrato and a beat: music-like, not speech."""
    t = np.arange(int(seconds * 16000)) / 16000
    chord = sum(0.08 * np.sin(2 * np.pi * f * t * (1 + 0.003 * np.sin(5 * t))) for f in (220.0, 277.2, 329.6))
    return (chord * (0.6 + 0.4 * (np.sin(2 * np.pi * 2 * t) > 0))).astype(np.float32)


@pytest.mark.parametrize("intro", ["silence", "jingle"])
def test_language_detected_past_a_long_intro(backend, tmp_path, intro):
    audio = np.zeros(40 * 16000, np.float32) if intro == "silence" else jingle(40)
    path = with_intro(tmp_path, audio)

    artifact = backend.process(AsrInput(wav_path=path, duration_s=51.0))

    assert artifact.language == "en"
    assert wer_points(shared_audio("jfk_16k.txt").read_text(), artifact.text) < 40


def test_hotwords_bring_the_unusual_word(backend, tmp_path):
    wav = _as_wav(shared_audio("hotwords.mp3"), tmp_path)

    artifact = backend.process(AsrInput(wav_path=wav, duration_s=4.0, language="en", hotwords="ComfyUI"))

    assert "ComfyUI" in artifact.segments[0].text


def test_word_timestamps_follow_the_speech(backend):
    artifact = backend.process(
        AsrInput(wav_path=shared_audio("jfk_16k.wav"), duration_s=11.0, language="en", word_timestamps=True)
    )

    words = [w for s in artifact.segments for w in s.words or []]
    assert [w.word.strip(" ,.") for w in words[:4]] == ["And", "so", "my", "fellow"]
    assert words[0].start < 1.0
    assert 9.0 < words[-1].end <= 11.0


def _as_wav(source: Path, folder: Path) -> Path:
    """``source`` decoded to a 16 kHz mono WAV by MAIE's preprocessing."""
    from maie.pipeline.preprocess import PreprocessInput, PreprocessOptions, Preprocessor

    target = folder / f"{source.stem}.wav"
    with Preprocessor(PreprocessOptions(min_duration_s=0.0, max_duration_s=600.0)) as stage:
        stage.process(PreprocessInput(source=source, target=target))
    return target
