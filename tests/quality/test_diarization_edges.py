"""Odd input on real backends: silence, impossible speaker counts, per-channel recordings."""

from __future__ import annotations

import wave
from typing import TYPE_CHECKING

import numpy as np
import pytest

from maie.config import Settings
from maie.errors import PermanentError, UnprocessableError
from maie.pipeline.diarization import REGISTRY, DiarizationInput, MonoInputError, SpeakerCount
from maie.pipeline.diarization.channels import ChannelsBackend, ChannelsOptions
from maie.pipeline.diarization.embedded import EmbeddedBackend, EmbeddedOptions
from tests.fixtures.channel_references import CHANNEL_RECORDINGS, reference
from tests.fixtures.conversations import decode_16k, speech_spans, speech_threshold_db
from tests.fixtures.diarization import baseline, der, require_extra
from tests.fixtures.paths import shared_audio

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from maie.schemas import SpeakerTurn


#: Points of DER the ``channels`` guard forgives against the recorded figure.
SLACK = 0.02


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedBackend]:
    require_extra()
    with EmbeddedBackend(EmbeddedOptions()) as loaded:
        yield loaded


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


@pytest.mark.parametrize("noise", [0.0, 0.002], ids=["digital-silence", "room-hiss"])
def test_silence_gives_zero_speakers(backend, tmp_path, noise):
    rng = np.random.default_rng(0)
    wav = write_wav(tmp_path / "quiet.wav", rng.normal(0, noise, 16000 * 5) if noise else np.zeros(16000 * 5))
    artifact = backend.process(DiarizationInput(wav_path=wav))
    assert artifact.num_speakers == 0
    assert artifact.turns == []
    assert artifact.duration_s == pytest.approx(5.0)


def test_more_speakers_than_the_audio_has_is_best_effort_with_a_warning(backend):
    wav = shared_audio("pyannote/sample.wav")
    artifact = backend.process(DiarizationInput(wav_path=wav, speakers=SpeakerCount.checked(num_speakers=5)))
    assert artifact.turns, "best effort still gives turns"
    assert any("num_speakers=5 asked but the audio supports 2" in w for w in artifact.warnings), (
        artifact.warnings
    )
    assert artifact.version.params["num_speakers"] == 5


def test_a_fixed_count_is_honoured(backend):
    wav = shared_audio("pyannote/ami_mixture_4spk.wav")
    artifact = backend.process(DiarizationInput(wav_path=wav, speakers=SpeakerCount.checked(num_speakers=4)))
    assert artifact.num_speakers == 4
    labels = [t.speaker for t in artifact.turns]
    assert labels[0] == "SPEAKER_00"
    assert sorted(set(labels)) == [f"SPEAKER_0{n}" for n in range(4)]


def test_max_speakers_caps_the_automatic_count(backend):
    wav = shared_audio("pyannote/ami_mixture_4spk.wav")
    artifact = backend.process(DiarizationInput(wav_path=wav, speakers=SpeakerCount.checked(max_speakers=2)))
    assert artifact.num_speakers <= 2


def test_version_records_model_checkpoint_and_parameters(backend):
    artifact = backend.process(DiarizationInput(wav_path=shared_audio("pyannote/sample.wav")))
    version = artifact.version
    assert (version.backend, version.model) == ("embedded", "resemblyzer-ge2e")
    assert len(version.checkpoint_hash) == 64
    assert version.model_path.endswith("pretrained.pt")
    for key in ("window_s", "hop_s", "vad", "clustering", "num_speakers", "min_speakers", "max_speakers"):
        assert key in version.params


def test_a_missing_wav_is_a_permanent_error(backend, tmp_path):
    with pytest.raises(PermanentError, match="missing"):
        backend.process(DiarizationInput(wav_path=tmp_path / "absent.wav"))


def write_stereo(path: Path, left: np.ndarray, right: np.ndarray) -> Path:
    frames = np.stack([left, right], axis=1)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes((np.clip(frames, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


def channel_turns(path: Path) -> list[SpeakerTurn]:
    with ChannelsBackend(ChannelsOptions()) as channels:
        return channels.process(DiarizationInput(wav_path=path, source_path=path)).turns


@pytest.mark.parametrize("name", list(CHANNEL_RECORDINGS))
def test_channels_der_no_worse_than_recorded(name):
    """One reader per channel (stereo_diarization) and a quiet, noisy second channel (michael)."""
    recorded = baseline("channels")[name]
    path = shared_audio(CHANNEL_RECORDINGS[name])
    with ChannelsBackend(ChannelsOptions()) as channels:
        artifact = channels.process(DiarizationInput(wav_path=path, source_path=path))
    assert artifact.num_speakers == recorded["speakers"] == 2
    measured = der(reference(name), artifact.turns)
    assert measured <= recorded["der"] + SLACK, f"{name}: DER {measured:.3f}, recorded {recorded['der']:.3f}"


def test_channels_speaker_map():
    with ChannelsBackend(ChannelsOptions()) as channels:
        stereo = channels.process(
            DiarizationInput(
                wav_path=shared_audio("stereo_diarization.wav"),
                source_path=shared_audio("stereo_diarization.wav"),
            )
        )
    assert stereo.version.params["speaker_channels"] == {"SPEAKER_00": 0, "SPEAKER_01": 1}


def test_channels_a_quiet_party_on_a_noisy_line_still_counts(tmp_path):
    """A party 30 dB below the other, over hiss, talking over them, is kept: it is not their bleed.

    An absolute level rule (the backend's first version dropped regions under -45 dBFS) loses
    this party; the crosstalk rule only drops what is correlated with a louder channel.
    """
    loud = decode_16k(shared_audio("jfk.flac"), tmp_path / "a.wav")
    quiet = decode_16k(shared_audio("picovoice/test.wav"), tmp_path / "b.wav")
    quiet = np.pad(quiet, (16000 * 3, len(loud) - len(quiet) - 16000 * 3)) * 10 ** (-30 / 20)
    hiss = np.random.default_rng(0).normal(
        0, np.sqrt(np.mean(quiet[quiet != 0] ** 2)) * 10 ** (-15 / 20), len(quiet)
    )
    turns = channel_turns(write_stereo(tmp_path / "call.wav", loud, quiet + hiss))
    found = sum(t.end - t.start for t in turns if t.speaker == "SPEAKER_01")
    expected = sum(b - a for a, b in speech_spans(quiet, speech_threshold_db(quiet[16000 * 3 :])))
    assert 0.8 * expected <= found <= expected + 1.0, (found, expected, turns)


def test_channels_crosstalk_is_not_a_speaker(tmp_path):
    """The other microphone picking up the talker 14 dB down, 5 ms late, over room hiss: one speaker."""
    talker = decode_16k(shared_audio("jfk.flac"), tmp_path / "a.wav")
    rng = np.random.default_rng(0)
    bleed = np.r_[np.zeros(80), talker[:-80]] * 0.2 + rng.normal(0, 0.001, len(talker))
    turns = channel_turns(write_stereo(tmp_path / "call.wav", talker, bleed))
    assert {t.speaker for t in turns} == {"SPEAKER_00"}, turns


def test_channels_refuses_mono_and_says_what_to_use(tmp_path):
    settings = Settings.from_env({"MAIE_DATA_DIR": str(tmp_path)}, env_file=None)
    mono = shared_audio("jfk_16k.wav")
    with pytest.raises(MonoInputError, match="diarization_backend=embedded") as caught:
        REGISTRY.run("channels", settings, DiarizationInput(wav_path=mono, source_path=mono))
    assert isinstance(caught.value, UnprocessableError)
    assert caught.value.status_code == 422
