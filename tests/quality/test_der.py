"""The diarization quality guard: DER of the ``embedded`` backend against reference annotations.

DER is pyannote.metrics' diarization error rate with a 0.25 s collar each side of every reference
boundary and overlapping speech scored (missed, false alarm and confusion over the reference
speech). The recordings: the AMI meeting excerpt (4 speakers, overlaps) and pyannote's two-speaker
sample against their RTTM, and conversations assembled from single-speaker clips
(tests/fixtures/conversations.py; the tuning and held-out sets of conversation_sets.py) against
the references derived from the assembly. A figure worse
than the one recorded in ``der_baseline.json`` by more than 2 points fails; so does a different
speaker count. ``scripts/bench.py --diarization --record`` rewrites the file after a deliberate
change (say why in the commit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from maie.config import Settings
from maie.pipeline.diarization import DiarizationInput, read_rttm
from maie.pipeline.diarization.embedded import EmbeddedBackend, EmbeddedOptions
from tests.fixtures.conversation_sets import CONVERSATIONS
from tests.fixtures.conversations import assemble, decode_16k
from tests.fixtures.diarization import baseline, der, require_extra
from tests.fixtures.paths import shared_audio

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from maie.schemas import SpeakerTurn

pytestmark = pytest.mark.slow

#: Points of DER the guard forgives against the recorded figure.
SLACK = 0.02
ANNOTATED = {
    "ami_mixture_4spk": ("pyannote/ami_mixture_4spk.wav", "pyannote/ami_mixture_4spk.rttm"),
    "sample": ("pyannote/sample.wav", "pyannote/sample.rttm"),
}


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBackend]:
    require_extra()
    data_dir = tmp_path_factory.mktemp("data")
    settings = Settings.from_env({"MAIE_DATA_DIR": str(data_dir)}, env_file=None)
    with EmbeddedBackend(EmbeddedOptions.from_settings(settings)) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[SpeakerTurn]]]:
    """Every scored recording as a preprocessed WAV with its reference turns."""
    folder = tmp_path_factory.mktemp("der")
    found: dict[str, tuple[Path, list[SpeakerTurn]]] = {}
    for name, (audio, rttm) in ANNOTATED.items():
        found[name] = (shared_audio(audio), read_rttm(shared_audio(rttm).read_text(encoding="utf-8")))
    for conversation in CONVERSATIONS:
        upload, reference = assemble(conversation, folder)
        wav = folder / f"{conversation.name}.preprocessed.wav"
        decode_16k(upload, wav)
        found[conversation.name] = (wav, reference)
    return found


@pytest.mark.parametrize("name", [*ANNOTATED, *(c.name for c in CONVERSATIONS)])
def test_der_no_worse_than_recorded(backend, recordings, name):
    recorded = baseline()[name]
    wav, reference = recordings[name]
    artifact = backend.process(DiarizationInput(wav_path=wav))
    measured = der(reference, artifact.turns)
    assert measured <= recorded["der"] + SLACK, (
        f"{name}: DER {measured:.3f} is worse than the recorded {recorded['der']:.3f} by more than "
        f"{SLACK:.2f}; turns: {artifact.turns}"
    )
    assert artifact.num_speakers == recorded["speakers"], (
        f"{name}: {artifact.num_speakers} speakers, {recorded['speakers']} recorded "
        f"({recorded['reference_speakers']} in the reference)"
    )


def test_the_guard_catches_a_broken_diarizer(recordings):
    """Teeth: everything given to one speaker scores far above every recorded figure."""
    _, reference = recordings["sample"]
    lumped = [type(t)(start=t.start, end=t.end, speaker="SPEAKER_00") for t in reference]
    assert der(reference, lumped) > baseline()["sample"]["der"] + SLACK


@pytest.mark.parametrize(
    "clip",
    [
        "jfk.flac",
        "picovoice/test.wav",
        "LJ050-0131.wav",
        "lhotse/2412-153948-0000.flac",
        "lhotse/libri-1088-134315-0000.wav",
        "mfa/acoustic_corpus.wav",
    ],
)
def test_one_reader_is_one_speaker(backend, tmp_path, clip):
    wav = tmp_path / "clip.wav"
    decode_16k(shared_audio(clip), wav)
    artifact = backend.process(DiarizationInput(wav_path=wav))
    assert artifact.num_speakers == 1, artifact.turns
    assert {t.speaker for t in artifact.turns} == {"SPEAKER_00"}
    assert artifact.warnings == []


def test_der_helper_scores_a_perfect_hypothesis_zero():
    reference = read_rttm(shared_audio("pyannote/sample.rttm").read_text(encoding="utf-8"))
    renamed = [type(t)(start=t.start, end=t.end, speaker=t.speaker.upper()) for t in reference]
    assert der(reference, renamed) == pytest.approx(0.0, abs=1e-9)
