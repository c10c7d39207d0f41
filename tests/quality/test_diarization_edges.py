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
from tests.fixtures.diarization import der, require_extra
from tests.fixtures.paths import shared_audio

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from maie.schemas import SpeakerTurn


#: DER of the ``channels`` backend on mfa/michaelandsickmichael.wav, as measured when written.
MICHAEL_DER = 0.294


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


def _michael_reference() -> list[SpeakerTurn]:
    from maie.schemas import SpeakerTurn

    turns = []
    for line in shared_audio("mfa/michaelandsickmichael.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            who, span = line[1:].split("]")[0].split()
            start, end = (float(x) for x in span.split("-"))
            turns.append(SpeakerTurn(start=start, end=end, speaker=who))
    return turns


def test_channels_one_reader_per_channel():
    with ChannelsBackend(ChannelsOptions()) as channels:
        stereo = channels.process(
            DiarizationInput(
                wav_path=shared_audio("stereo_diarization.wav"),
                source_path=shared_audio("stereo_diarization.wav"),
            )
        )
        assert stereo.num_speakers == 2
        assert stereo.version.params["speaker_channels"] == {"SPEAKER_00": 0, "SPEAKER_01": 1}
        michael = shared_audio("mfa/michaelandsickmichael.wav")
        artifact = channels.process(DiarizationInput(wav_path=michael, source_path=michael))
    assert artifact.num_speakers == 2
    # Measured 0.294: Silero misses much of the "sick" channel's first minute-half (a noisy,
    # quiet recording), not the channel logic; the guard keeps it from getting worse.
    assert der(_michael_reference(), artifact.turns) <= MICHAEL_DER + 0.02


def test_channels_refuses_mono_and_says_what_to_use(tmp_path):
    settings = Settings.from_env({"MAIE_DATA_DIR": str(tmp_path)}, env_file=None)
    mono = shared_audio("jfk_16k.wav")
    with pytest.raises(MonoInputError, match="diarization_backend=embedded") as caught:
        REGISTRY.run("channels", settings, DiarizationInput(wav_path=mono, source_path=mono))
    assert isinstance(caught.value, UnprocessableError)
    assert caught.value.status_code == 422
