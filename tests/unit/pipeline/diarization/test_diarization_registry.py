from __future__ import annotations

import contextlib
import pickle
from pathlib import Path
from typing import ClassVar

import pytest

from maie.config import DIARIZATION_BACKENDS, Settings
from maie.errors import BackendUnavailableError, ConfigError, ModelLoadError, UnprocessableError
from maie.pipeline.diarization import REGISTRY, DiarizationInput, DiarizerRegistry, SpeakerCount
from maie.pipeline.diarization.base import DiarizationBackend, DiarizerAvailability, DiarizerSpec
from maie.pipeline.diarization.embedded import EmbeddedOptions
from maie.pipeline.diarization.pyannote_backend import PyannoteOptions, turns_of
from maie.pipeline.diarization.torch_file import CheckpointError, load_tensors
from maie.schemas import DiarizationArtifact, DiarizationVersion


def settings(**env):
    return Settings.from_env({k: str(v) for k, v in env.items()}, env_file=None)


def test_chain_follows_the_fallback_setting():
    conf = settings(MAIE_DIARIZATION_FALLBACK="channels,embedded")
    assert REGISTRY.chain("embedded", conf) == ["embedded", "channels"]


def test_registry_registers_exactly_the_configurable_backends():
    assert tuple(REGISTRY.ids()) == DIARIZATION_BACKENDS
    entries = {m.backend_id: m for m in REGISTRY.describe(settings(), refresh=True)}
    assert entries["channels"].available
    assert "multichannel_input" in entries["channels"].capabilities


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(BackendUnavailableError, match="known backends: embedded, pyannote, channels"):
        REGISTRY.get_spec("whisperx")


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"num_speakers": 0}, "from 1 to 32"),
        ({"max_speakers": 33}, "from 1 to 32"),
        ({"min_speakers": 4, "max_speakers": 2}, "lower min_speakers or raise max_speakers"),
        ({"num_speakers": 5, "max_speakers": 3}, "give num_speakers alone"),
    ],
)
def test_inconsistent_counts_say_what_to_change(counts, message):
    with pytest.raises(UnprocessableError, match=message):
        SpeakerCount.checked(**counts)


def test_speaker_count_bounds():
    assert SpeakerCount.checked(num_speakers=3).bounds() == (3, 3)
    assert SpeakerCount.checked(min_speakers=2).bounds(default_max=10) == (2, 10)
    assert SpeakerCount.checked(min_speakers=2, max_speakers=4).bounds() == (2, 4)


def test_settings_refuse_unknown_backends_and_fallbacks():
    with pytest.raises(ConfigError, match="MAIE_DIARIZATION_BACKEND"):
        settings(MAIE_DIARIZATION_BACKEND="nope")
    with pytest.raises(ConfigError, match="MAIE_DIARIZATION_FALLBACK"):
        settings(MAIE_DIARIZATION_FALLBACK="channels,nope")
    assert settings(MAIE_DIARIZATION_FALLBACK="embedded, channels,embedded").diarization.fallback_chain() == (
        "embedded",
        "channels",
    )


def test_token_is_redacted():
    name = "MAIE_DIARIZATION_PYANNOTE_TOKEN"
    assert settings(**{name: "hf_secret"}).redacted()["diarization"][name] == "***"


def test_missing_extra_is_explained_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr("maie.pipeline.diarization.embedded.shipped_weights", lambda: None)
    problem = EmbeddedOptions().problem()
    assert problem is not None
    assert "uv sync --extra diarization" in problem


class _Recorder(DiarizationBackend[str]):
    """Test double: a backend that fails to load or returns an empty artifact, and records calls."""

    backend_id = "double"
    calls: ClassVar[list[str]] = []

    @property
    def loaded(self):
        return True

    def cache_key(self):
        return self.options

    def load(self):
        self.calls.append(f"load {self.options}")
        if self.options == "broken":
            raise ModelLoadError("weights are missing")

    def process(self, data):
        return DiarizationArtifact(
            turns=[],
            num_speakers=0,
            duration_s=1,
            processing_time_s=0,
            version=DiarizationVersion(backend=self.options, model="m"),
        )


def _spec(backend_id, available=True):
    return DiarizerSpec(
        backend_id=backend_id,
        name=backend_id,
        description="",
        capabilities=(),
        hardware=("cpu",),
        factory=lambda _s: _Recorder(backend_id),
        probe=lambda _s: DiarizerAvailability(variant="v", reason=None if available else "not installed"),
    )


def test_fallback_chain_is_walked_and_recorded():
    class Registry(DiarizerRegistry):  # MAIE_DIARIZATION_FALLBACK=absent,good, with test backends
        def chain(self, requested, settings):
            return [requested, "absent", "good"]

    registry = Registry([_spec("broken"), _spec("absent", available=False), _spec("good")])
    _Recorder.calls = []
    artifact = registry.run("broken", settings(), DiarizationInput(wav_path=Path("x.wav")))
    assert artifact.version.backend == "good"
    assert artifact.version.fallback_from == "broken"
    assert "broken: weights are missing" in artifact.warnings[0]
    assert "absent: not installed" in artifact.warnings[0]
    assert _Recorder.calls == ["load broken", "load good"]


def test_no_backend_loading_is_a_load_error_naming_each():
    registry = DiarizerRegistry([_spec("broken")])
    with pytest.raises(ModelLoadError, match="broken: weights are missing"):
        registry.run("broken", settings(), DiarizationInput(wav_path=Path("x.wav")))


def test_run_uses_the_callers_residency():
    registry = DiarizerRegistry([_spec("good")])
    held = []

    @contextlib.contextmanager
    def use(backend):
        held.append(backend.options)
        yield backend

    registry.run("good", settings(), DiarizationInput(wav_path=Path("x.wav")), use=use)
    assert held == ["good"]


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_reader_refuses_code(tmp_path):
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        for item in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(item, f)
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(CheckpointError, match=r"builtins\.print.*refused"):
        load_tensors(path)


def test_checkpoint_reader_refuses_non_checkpoints(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(pickle.dumps(42))
    with pytest.raises(CheckpointError, match="magic"):
        load_tensors(path)


def test_pyannote_options_explain_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr("maie.pipeline.diarization.pyannote_backend.missing_library", lambda *_a, **_k: None)
    assert "no config.yaml" in (PyannoteOptions(pipeline=str(tmp_path)).problem() or "")
    assert "does not exist" in (PyannoteOptions(pipeline=str(tmp_path / "absent")).problem() or "")
    gated = PyannoteOptions(pipeline="pyannote/speaker-diarization-community-1").problem() or ""
    assert "MAIE_DIARIZATION_PYANNOTE_TOKEN" in gated
    (tmp_path / "config.yaml").write_text("pipeline: {}\n")
    assert PyannoteOptions(pipeline=str(tmp_path)).problem() is None


def test_pyannote_without_the_library_says_how_to_install():
    problem = PyannoteOptions(pipeline="x/y", token="t").problem()  # noqa: S106 - not a secret
    if problem is None:
        pytest.skip("pyannote.audio is installed here")
    assert "pip install" in problem


def test_pyannote_output_becomes_turns():
    """pyannote.core (installed with pyannote.metrics) builds the Annotation the pipeline returns."""
    from pyannote.core import Annotation, Segment

    annotation = Annotation()
    annotation[Segment(0.5, 2.0)] = "SPEAKER_01"
    annotation[Segment(1.5, 3.0)] = "SPEAKER_00"

    class DiarizeOutput:  # test double of pyannote.audio 4's output container
        speaker_diarization = annotation

    for output in (annotation, DiarizeOutput()):
        assert [(t.start, t.end, t.speaker) for t in turns_of(output)] == [
            (0.5, 2.0, "SPEAKER_01"),
            (1.5, 3.0, "SPEAKER_00"),
        ]


def test_the_guard_fails_loudly_under_ci_when_the_extra_is_missing(monkeypatch):
    from tests.fixtures.diarization import require_extra

    monkeypatch.setattr("maie.pipeline.diarization.embedded.shipped_weights", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI"):
        require_extra()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="uv sync --extra diarization"):
        require_extra()
