"""The ``pyannote`` backend on real weights: DER on the shared references, fixed counts, version.

pyannote's pipelines are gated on the model hub, so CI cannot fetch them. Install
``pyannote.audio`` 4 (with CPU torch) beside MAIE, download a pipeline once (docs/diarization.md)
and point ``E2E_PYANNOTE_PIPELINE`` at its folder to run these; they are skipped otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from maie.pipeline.diarization import DiarizationInput, SpeakerCount, read_rttm
from maie.pipeline.diarization.pyannote_backend import PyannoteBackend, PyannoteOptions
from tests.fixtures.diarization import der
from tests.fixtures.paths import shared_audio

PIPELINE = os.environ.get("E2E_PYANNOTE_PIPELINE", "")

pytestmark = pytest.mark.skipif(
    not (PIPELINE and (Path(PIPELINE) / "config.yaml").is_file()),
    reason="set E2E_PYANNOTE_PIPELINE to a downloaded pyannote pipeline folder to run real-weight checks",
)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    pytest.importorskip("pyannote.audio", reason="pyannote.audio is not installed")
    options = PyannoteOptions(pipeline=PIPELINE, device="cpu", cache_dir=tmp_path_factory.mktemp("cache"))
    with PyannoteBackend(options) as loaded:
        yield loaded


@pytest.mark.parametrize(("name", "limit"), [("ami_mixture_4spk", 0.25), ("sample", 0.10)])
def test_der_on_the_shared_references(backend, name, limit):
    reference = read_rttm(shared_audio(f"pyannote/{name}.rttm").read_text(encoding="utf-8"))
    artifact = backend.process(DiarizationInput(wav_path=shared_audio(f"pyannote/{name}.wav")))
    assert der(reference, artifact.turns) <= limit
    assert artifact.turns[0].speaker == "SPEAKER_00"


def test_fixed_count_and_version(backend):
    artifact = backend.process(
        DiarizationInput(
            wav_path=shared_audio("pyannote/sample.wav"), speakers=SpeakerCount.checked(num_speakers=2)
        )
    )
    assert artifact.num_speakers == 2
    assert artifact.version.backend == "pyannote"
    assert len(artifact.version.checkpoint_hash) == 64
    assert artifact.version.params["num_speakers"] == 2
